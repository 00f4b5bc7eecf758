// Counts the values (YAML nodes) a config text would build, before it is parsed: the YAML
// library keeps its whole syntax tree in memory while it builds a document, about 0.7 KB per
// flow-list item, so 1 MiB of `[1,1,1,...]` would take 440 MB before any check could run. The
// lexer runs in constant memory. Pure.
import { CST, Lexer } from 'yaml';

/** Token types that each start one node. */
const NODE_TOKENS: ReadonlySet<string> = new Set(['scalar', 'single-quoted-scalar', 'double-quoted-scalar', 'block-scalar-header', 'alias', 'flow-map-start', 'flow-seq-start']);

/** Tokens between an indicator and the value it introduces. */
const GAP_TOKENS: ReadonlySet<string> = new Set(['space', 'newline', 'comment', 'anchor', 'tag']);

/**
 * How many nodes the text holds, counting up to `stopAfter` (then it returns `stopAfter` + 1).
 * An empty list item (`-` with nothing after it) is a node too: `-\n-\n-\n...` is as costly as
 * `[a,a,a]`. Values of mappings are counted by their tokens; keys are scalars.
 */
export function countYamlNodes(text: string, stopAfter: number): number {
  let nodes = 0;
  let itemOpen = false;
  for (const token of new Lexer().lex(text)) {
    const type = CST.tokenType(token);
    if (!type || GAP_TOKENS.has(type)) continue;
    if (NODE_TOKENS.has(type)) {
      nodes++;
      itemOpen = false;
    } else {
      if (itemOpen) nodes++;
      itemOpen = type === 'seq-item-ind';
    }
    if (nodes > stopAfter) return stopAfter + 1;
  }
  return itemOpen ? nodes + 1 : nodes;
}
