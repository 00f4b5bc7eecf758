// Line breaks as the reference agent reads them. It reads a config with Kubernetes' YAML reader
// (k8s.io/apimachinery util/yaml ToJSON): a text whose first non-space character is `{` goes to
// Go's encoding/json as it is, anything else to go-yaml v2, which (as YAML 1.1) ends a line at
// CR, LF, CRLF, NEL (U+0085), LS (U+2028) and PS (U+2029). The yaml library and the plain readers
// end lines at LF and CRLF only, so each other break is written as LF before they read the text:
// one UTF-16 unit for one, so every offset, and every column, stays where it was. JSON knows CR as
// white space but not NEL, LS or PS, which Go refuses; a JSON text holding one is refused here too.
// Pure.

/** Go's unicode.IsSpace, which decides whether the reference reads a text as JSON. */
const GO_SPACE = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*/;

/** A break that the readers do not know: a CR not followed by LF, NEL, LS or PS. */
const OTHER_BREAK = /\r(?!\n)|[\u0085\u2028\u2029]/;
const OTHER_BREAKS = new RegExp(OTHER_BREAK.source, 'g');

/** NEL, LS or PS: line breaks to go-yaml v2, refused by Go's JSON reader. */
const UNICODE_BREAK = /[\u0085\u2028\u2029]/;

/** The name an operator can search for, per character. */
const BREAK_NAMES: Readonly<Record<string, string>> = {
  '\u0085': 'NEL (U+0085, next line)',
  '\u2028': 'LS (U+2028, line separator)',
  '\u2029': 'PS (U+2029, paragraph separator)',
};

/** A line-break character the reference refuses where it stands: at `offset` of the text. */
export interface LineBreakProblem {
  readonly offset: number;
  readonly message: string;
}

/**
 * The text with every line break go-yaml v2 knows written as LF (CRLF stays: every reader knows
 * it), or, for a JSON text holding NEL, LS or PS, where and why the reference refuses it. The
 * same length as `text`, so offsets and columns still point into the text as written.
 */
export function toLineFeeds(text: string): { text: string; problem?: undefined } | { text?: undefined; problem: LineBreakProblem } {
  // The common case, a text with LF or CRLF only, is returned as it is.
  if (!OTHER_BREAK.test(text)) return { text };
  // The reference reads a text as JSON when its first character after Go's white space is `{`.
  const at = text.charCodeAt(GO_SPACE.exec(text)![0].length) === 123 ? UNICODE_BREAK.exec(text) : null;
  if (at === null) return { text: text.replace(OTHER_BREAKS, '\n') };
  return {
    problem: {
      offset: at.index,
      message:
        `${BREAK_NAMES[at[0]]} in a config that starts with "{": the reference agent reads such a config as JSON (Go's encoding/json), ` +
        'which refuses this character; replace it with a plain line break (LF)',
    },
  };
}
