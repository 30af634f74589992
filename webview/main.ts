// Webview entry point: the host sets <body data-view> to pick the chat or the panel.
import { startChat } from './chat';
import { registerComponents } from './components';
import { startPanel } from './panel';

registerComponents();
const root = document.createElement('main');
root.className = document.body.dataset.view === 'panel' ? 'panel' : 'chat';
document.body.append(root);
if (document.body.dataset.view === 'panel') startPanel(root);
else startChat(root);
