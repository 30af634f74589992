// Entry point that VS Code's extension host calls (extensionTestsPath): runs the mocha suite
// and rejects when any test fails, which makes test-electron exit non-zero.
// mocha 12 is an ES module whose CommonJS build lives in lib/mocha.cjs; the extension host
// loads this bundle with require(), so use that build.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Mocha: typeof import('mocha') = require('mocha/lib/mocha.cjs');

export function run(): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', color: true, timeout: 120_000 });
  // Define describe/it on the global object, then load the test modules (bundled by esbuild).
  mocha.suite.emit('pre-require', globalThis, 'extension.test', mocha);
  require('./extension.test');
  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures > 0 ? reject(new Error(`${failures} test(s) failed`)) : resolve()));
  });
}
