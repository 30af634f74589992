// The webview's component layer: the only file that knows about @vscode/webview-ui-toolkit
// (deprecated upstream, required by the design card). Views build their DOM from these small
// factories, so moving to @vscode-elements later means rewriting this file only.
import {
  provideVSCodeDesignSystem,
  vsCodeButton,
  vsCodeDivider,
  vsCodeDropdown,
  vsCodeOption,
  vsCodeProgressRing,
  vsCodeTextArea,
} from '@vscode/webview-ui-toolkit';

let registered = false;
export function registerComponents(): void {
  if (registered) return;
  registered = true;
  provideVSCodeDesignSystem().register(
    vsCodeButton(),
    vsCodeDivider(),
    vsCodeDropdown(),
    vsCodeOption(),
    vsCodeProgressRing(),
    vsCodeTextArea(),
  );
}

export interface Ids {
  id?: string;
  testId?: string;
}

function tag<K extends keyof HTMLElementTagNameMap>(name: K, ids: Ids = {}, className?: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(name);
  if (ids.id) el.id = ids.id;
  if (ids.testId) el.dataset.testid = ids.testId;
  if (className) el.className = className;
  return el;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  name: K,
  className?: string,
  text?: string,
  ids: Ids = {},
): HTMLElementTagNameMap[K] {
  const e = tag(name, ids, className);
  if (text !== undefined) e.textContent = text;
  return e;
}

export type ButtonLook = 'primary' | 'secondary' | 'icon';

export function button(label: string, onClick: () => void, opts: Ids & { look?: ButtonLook; aria?: string; title?: string } = {}): HTMLElement {
  const b = document.createElement('vscode-button');
  if (opts.id) b.id = opts.id;
  if (opts.testId) b.dataset.testid = opts.testId;
  b.setAttribute('appearance', opts.look ?? 'primary');
  b.textContent = label;
  b.setAttribute('aria-label', opts.aria ?? label);
  if (opts.title) b.title = opts.title;
  b.addEventListener('click', () => {
    if (!b.hasAttribute('disabled')) onClick();
  });
  return b;
}

export function setDisabled(e: HTMLElement, disabled: boolean): void {
  if (disabled) e.setAttribute('disabled', '');
  else e.removeAttribute('disabled');
}

/** A multi-line input; `.value` is read through this wrapper, not the toolkit's element type. */
export interface TextBox {
  readonly el: HTMLElement;
  value: string;
  focus(): void;
}

export function textBox(opts: Ids & { label: string; placeholder: string; rows?: number }): TextBox {
  const t = document.createElement('vscode-text-area') as HTMLElement & { value: string };
  if (opts.id) t.id = opts.id;
  if (opts.testId) t.dataset.testid = opts.testId;
  t.setAttribute('placeholder', opts.placeholder);
  t.setAttribute('rows', String(opts.rows ?? 3));
  t.setAttribute('resize', 'vertical');
  t.setAttribute('aria-label', opts.label);
  return {
    el: t,
    get value() {
      return t.value ?? '';
    },
    set value(v: string) {
      t.value = v;
    },
    focus: () => t.focus(),
  };
}

export interface Choice<T extends string> {
  readonly el: HTMLElement;
  value: T;
}

export function dropdown<T extends string>(
  options: { value: T; label: string }[],
  initial: T,
  onChange: (v: T) => void,
  opts: Ids & { label: string },
): Choice<T> {
  const d = document.createElement('vscode-dropdown') as HTMLElement & { value: string };
  if (opts.id) d.id = opts.id;
  if (opts.testId) d.dataset.testid = opts.testId;
  d.setAttribute('aria-label', opts.label);
  for (const o of options) {
    const opt = document.createElement('vscode-option');
    opt.setAttribute('value', o.value);
    opt.textContent = o.label;
    if (o.value === initial) opt.setAttribute('selected', '');
    d.append(opt);
  }
  const valid = (v: string): v is T => options.some((o) => o.value === v);
  d.addEventListener('change', () => {
    if (valid(d.value)) onChange(d.value);
  });
  return {
    el: d,
    get value() {
      return valid(d.value) ? d.value : initial;
    },
    set value(v: T) {
      d.value = v;
    },
  };
}

export function spinner(label: string): HTMLElement {
  const r = document.createElement('vscode-progress-ring');
  r.setAttribute('aria-label', label);
  return r;
}

export function divider(): HTMLElement {
  return document.createElement('vscode-divider');
}

/** A link-looking native button: keyboard focusable and announced as a button. */
export function linkButton(label: string, onClick: () => void, ids: Ids & { title?: string } = {}): HTMLButtonElement {
  const b = el('button', 'link-button', label, ids);
  b.type = 'button';
  if (ids.title) b.title = ids.title;
  b.addEventListener('click', onClick);
  return b;
}
