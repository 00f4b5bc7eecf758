// Short excerpts of input for messages. A config can be one huge scalar, or a symlink to any file
// on the node; a message that quotes input whole floods the log and /healthz and can leak what
// that file holds. Every message that shows input goes through these two helpers.

/** The most bytes of input a message shows, counted after escaping. */
export const EXCERPT_MAX_BYTES = 200;

/** The longest prefix of `text` whose escaped form fits `maxBytes`, and whether that is all of it. */
function prefixWithin(text: string, maxBytes: number, escape: (ch: string) => string): { head: string; whole: boolean } {
  let bytes = 0;
  let head = '';
  for (const ch of text) {
    const out = escape(ch);
    bytes += Buffer.byteLength(out, 'utf8');
    if (bytes > maxBytes) return { head, whole: false };
    head += out;
  }
  return { head, whole: true };
}

const cutNote = (text: string): string => ` (cut, ${Buffer.byteLength(text, 'utf8')} bytes)`;

/** `"text"` quoted as JSON does; past `maxBytes`, its start then `…" (cut, N bytes)`. */
export function quoteExcerpt(text: string, maxBytes = EXCERPT_MAX_BYTES): string {
  const { head, whole } = prefixWithin(text, maxBytes, (ch) => JSON.stringify(ch).slice(1, -1));
  return whole ? `"${head}"` : `"${head}…"${cutNote(text)}`;
}

/** `text` as is; past `maxBytes`, its start then `… (cut, N bytes)`. For messages that embed input unquoted. */
export function cutExcerpt(text: string, maxBytes = EXCERPT_MAX_BYTES): string {
  const { head, whole } = prefixWithin(text, maxBytes, (ch) => ch);
  return whole ? head : `${head}…${cutNote(text)}`;
}
