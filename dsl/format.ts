import type { Comment, Item, PipeFile, Setting, Value } from "./ast.ts";
import { spanEnd } from "./ast.ts";
import { printValue } from "./print.ts";

const INDENT = "  ";

/**
 * The canonical text of a parsed .pipe (the caller refuses files with syntax errors): two-space
 * indents, one item per line, `key: value` with single spaces, at most one blank line where the
 * source had blank lines, every comment kept in place. Formatting the output again changes nothing.
 */
export function formatPipe(ast: PipeFile, source: string): string {
  return new Formatter(ast.comments, source).file(ast);
}

class Formatter {
  private readonly out: string[] = [];
  private next = 0;
  /** Source line of the last thing written, for trailing comments and blank lines. */
  private lastLine = 0;
  private readonly lineStarts: number[] = [0];

  constructor(
    private readonly comments: readonly Comment[],
    source: string,
  ) {
    for (let i = 0; i < source.length; i++) if (source[i] === "\n") this.lineStarts.push(i + 1);
  }

  file(ast: PipeFile): string {
    for (const p of ast.pipelines) {
      this.commentsBefore(p.keywordSpan.offset, "");
      this.write(`${p.keyword} ${p.name} {`, "", p.keywordSpan.offset, p.nameSpan.offset);
      for (const item of p.items) this.item(item);
      this.commentsBefore(p.end, INDENT);
      this.write("}", "", p.end, p.end, false);
    }
    this.commentsBefore(Infinity, "");
    return this.out.join("\n") + "\n";
  }

  private item(item: Item): void {
    if (item.kind === "setting") return this.setting(item, INDENT);
    const start = item.keywordSpan.offset;
    this.commentsBefore(start, INDENT);
    const head = `${item.keyword} ${item.name} = ${printValue(item.value)}`;
    if (!item.body) return this.write(head, INDENT, start, spanEnd(item.value.span) - 1);
    this.write(`${head} {`, INDENT, start, spanEnd(item.value.span));
    for (const s of item.body) this.setting(s, INDENT + INDENT);
    const end = item.bodyEnd ?? spanEnd(item.body.at(-1)?.value.span ?? item.value.span);
    this.commentsBefore(end, INDENT + INDENT);
    this.write("}", INDENT, end, end, false);
  }

  private setting(s: Setting, indent: string): void {
    this.commentsBefore(s.keySpan.offset, indent);
    this.write(`${s.key}: ${printValue(s.value)}${s.optional ? "?" : ""}`, indent, s.keySpan.offset, s.optional ? s.optional.offset : valueEnd(s.value));
  }

  private commentsBefore(offset: number, indent: string): void {
    while (this.next < this.comments.length && this.comments[this.next]!.span.offset < offset) {
      const c = this.comments[this.next++]!;
      if (c.span.line === this.lastLine && this.out.length > 0) this.out[this.out.length - 1] += `  ${c.text.trimEnd()}`;
      else this.write(c.text.trimEnd(), indent, c.span.offset, c.span.offset);
    }
  }

  /** Writes a line; a blank line before it when the source had one (not right after an opening brace). */
  private write(text: string, indent: string, startOffset: number, endOffset: number, blankAllowed = true): void {
    const start = this.lineOf(startOffset);
    const previous = this.out.at(-1);
    if (blankAllowed && previous !== undefined && previous !== "" && !previous.endsWith("{") && start > this.lastLine + 1) this.out.push("");
    this.out.push(indent + text);
    this.lastLine = this.lineOf(endOffset);
  }

  private lineOf(offset: number): number {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }
}

function valueEnd(v: Value): number {
  return spanEnd(v.span) - 1;
}
