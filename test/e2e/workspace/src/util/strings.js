'use strict';

const MAX_SLUG_LENGTH = 48;

function slugify(text, separator) {
  const sep = separator || '-';
  return text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, sep)
    .replace(new RegExp(`^${sep}+|${sep}+$`, 'g'), '')
    .slice(0, MAX_SLUG_LENGTH);
}

function truncate(text, limit, ellipsis) {
  if (text.length <= limit) return text;
  return text.slice(0, Math.max(0, limit - ellipsis.length)) + ellipsis;
}

module.exports = { slugify, truncate, MAX_SLUG_LENGTH };
