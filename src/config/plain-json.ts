// The JSON form of a config (`{"nonMasqueradeCIDRs": [...]}`, one line or pretty-printed), read
// straight into the nodes readPlainYaml gives, with positions. JSON is YAML, so the yaml library
// reads it too, at the same cost as any YAML; this reader answers only for JSON whose reading by
// the library is certain (strings without escapes, no tabs, no repeated key) and returns
// undefined otherwise, so the caller falls back to the library. Pure.
import { MAX_CONFIG_NODES } from '../limits.js';
import type { Position } from './config.js';
import { DOUBLE_QUOTED, typePlainScalar, type PlainNode, type PlainPair } from './plain-yaml.js';

/** Deepest nesting read here (a config nests 4 deep: snat, item, cidrs); deeper is the library's to bound and report. */
const MAX_DEPTH = 4;

/** A JSON number. */
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?/y;

/** Thrown (and caught in readPlainJson) when the text leaves what this reader is sure about. */
class NotPlainJson extends Error {}

const notPlain = (): never => {
  throw new NotPlainJson();
};

/** Reads `text` as a JSON object, or returns undefined (the caller then parses it with the yaml library). */
export function readPlainJson(text: string): PlainPair[] | undefined {
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const pos = (): Position => ({ line, column: i - lineStart + 1 });
  /** Spaces and line breaks (`\n`, `\r\n`); a tab or a lone `\r` is left to the library. */
  const skip = (): void => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 32) i++;
      else if (c === 10) {
        i++;
        line++;
        lineStart = i;
      } else if (c === 13 && text.charCodeAt(i + 1) === 10) i++;
      else return;
    }
  };
  const expect = (code: number): void => {
    if (text.charCodeAt(i) !== code) notPlain();
    i++;
  };
  const readString = (): string => {
    DOUBLE_QUOTED.lastIndex = i;
    const m = DOUBLE_QUOTED.exec(text) ?? notPlain();
    i += m[0].length;
    return m[1]!;
  };
  const readObject = (depth: number): { pairs: PlainPair[]; pos: Position } => {
    if (depth > MAX_DEPTH) notPlain();
    const at = pos();
    expect(123);
    skip();
    const pairs: PlainPair[] = [];
    if (text.charCodeAt(i) === 125) {
      i++;
      return { pairs, pos: at };
    }
    for (;;) {
      const keyPos = pos();
      const key = readString();
      if (pairs.some((p) => p.key === key)) notPlain();
      // A key and its `:` on one line, as the library's implicit keys must be.
      while (text.charCodeAt(i) === 32) i++;
      expect(58);
      skip();
      pairs.push({ key, keyPos, value: readValue(false, depth) });
      skip();
      const c = text.charCodeAt(i++);
      if (c === 125) return { pairs, pos: at };
      if (c !== 44) notPlain();
      skip();
    }
  };
  const readValue = (inList: boolean, depth: number): PlainNode => {
    const at = pos();
    const c = text.charCodeAt(i);
    if (c === 34) return { kind: 'scalar', value: readString(), raw: undefined, pos: at };
    if (c === 123) {
      const { pairs } = readObject(depth + 1);
      return { kind: 'map', pairs, pos: at };
    }
    if (c === 91) {
      if (depth + 1 > MAX_DEPTH) notPlain();
      i++;
      skip();
      const items: PlainNode[] = [];
      if (text.charCodeAt(i) === 93) {
        i++;
        return { kind: 'list', items, pos: at };
      }
      for (;;) {
        // Past the limit the library's count refuses the text, before building anything.
        if (items.length >= MAX_CONFIG_NODES) notPlain();
        items.push(readValue(true, depth + 1));
        skip();
        const d = text.charCodeAt(i++);
        if (d === 93) return { kind: 'list', items, pos: at };
        if (d !== 44) notPlain();
        skip();
      }
    }
    // A number or a word in a list is never a CIDR: the library reports it.
    if (inList) notPlain();
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text) ?? /true|false|null/y.exec(text.slice(i, i + 5)) ?? notPlain();
    i += m[0].length;
    const typed = typePlainScalar(m[0]) ?? notPlain();
    return { kind: 'scalar', value: typed.value, raw: m[0], pos: at };
  };

  try {
    skip();
    if (text.charCodeAt(i) !== 123) return undefined;
    const { pairs } = readObject(1);
    skip();
    return i === text.length ? pairs : undefined;
  } catch (err) {
    if (err instanceof NotPlainJson) return undefined;
    throw err;
  }
}
