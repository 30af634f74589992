// The status bar item: model, provider in use and cache state; a click opens the stats panel.
import * as vscode from 'vscode';
import type { ModelStatus } from '../protocol';

export class ArcStatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('arcContext.status', vscode.StatusBarAlignment.Right, 100);
  private status: ModelStatus = { state: 'not-loaded' };
  private cache = '';

  constructor() {
    this.item.name = 'ARC Context';
    this.item.command = 'arcContext.showStats';
    this.render();
    this.item.show();
  }

  setStatus(s: ModelStatus): void {
    this.status = s;
    this.render();
  }

  setCache(text: string): void {
    this.cache = text;
    this.render();
  }

  dispose(): void {
    this.item.dispose();
  }

  private render(): void {
    const s = this.status;
    const cache = this.cache ? ` · ${this.cache}` : '';
    this.item.backgroundColor = undefined;
    switch (s.state) {
      case 'not-loaded':
        this.item.text = `$(circle-outline) ARC${cache}`;
        break;
      case 'loading':
        this.item.text = '$(loading~spin) ARC: loading model';
        break;
      case 'ready':
        this.item.text = `$(check) ARC ${s.model ?? ''} · ${s.provider ?? '?'}${cache}`;
        break;
      case 'error':
        this.item.text = '$(error) ARC: model error';
        this.item.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
        break;
    }
    const md = new vscode.MarkdownString(undefined, true);
    md.appendMarkdown('**ARC Context**\n\n');
    md.appendMarkdown(`- Model: ${s.model ?? (s.state === 'not-loaded' ? 'loads on first question' : '—')}\n`);
    md.appendMarkdown(`- Provider: ${s.provider ?? '—'}\n`);
    md.appendMarkdown(`- Cache: ${this.cache || '—'}\n`);
    if (s.message) md.appendText(`\n${s.message}\n`);
    md.appendMarkdown('\nClick for compression stats.');
    this.item.tooltip = md;
    this.item.accessibilityInformation = { label: `ARC Context: ${this.item.text.replace(/\$\([^)]*\)\s*/g, '')}` };
  }
}
