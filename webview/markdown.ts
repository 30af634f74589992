// Model output is untrusted text: it is parsed as Markdown and then sanitized before it touches
// innerHTML. Links may only point to http(s); images, forms and styles are dropped.
import DOMPurify from 'dompurify';
import { marked } from 'marked';

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ['img', 'style', 'form', 'input', 'button', 'iframe', 'video', 'audio', 'svg', 'math'],
  FORBID_ATTR: ['style', 'id', 'class'],
  ALLOWED_URI_REGEXP: /^https?:/i,
};

export function renderMarkdown(target: HTMLElement, text: string): void {
  const html = marked.parse(text, { async: false, gfm: true, breaks: true });
  target.innerHTML = DOMPurify.sanitize(html, PURIFY);
}
