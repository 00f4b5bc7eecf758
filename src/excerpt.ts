/** How many bytes of someone else's text (a tool's stderr, an input value) a message may quote. */
export const EXCERPT_BYTES = 200;

/**
 * The first `maxBytes` UTF-8 bytes of `text` (cut at a character boundary), marked as cut and
 * saying how much was left out, so no message ever carries a whole foreign output or input.
 */
export function excerpt(text: string, maxBytes = EXCERPT_BYTES): string {
  // Cheap exit for the common short case; a UTF-16 unit is at most 3 UTF-8 bytes.
  if (text.length * 3 <= maxBytes) return text;
  const total = Buffer.byteLength(text);
  if (total <= maxBytes) return text;
  let head = text.slice(0, maxBytes);
  let bytes = Buffer.byteLength(head);
  while (bytes > maxBytes) {
    const drop = head.length - Math.max(1, Math.floor((bytes - maxBytes) / 3));
    head = head.slice(0, drop);
    bytes = Buffer.byteLength(head);
  }
  // Never leave half of a surrogate pair at the end.
  const last = head.charCodeAt(head.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) head = head.slice(0, -1);
  return `${head}... [cut: ${total - Buffer.byteLength(head)} more bytes]`;
}
