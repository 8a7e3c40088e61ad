/**
 * A tiny XML well-formedness check for the generated SVG: balanced and properly nested tags,
 * one root, quoted attributes without raw `<`, and no stray `&` outside entities.
 */
export function checkXml(text: string): { root: string; elements: number } {
  const body = text.replace(/^<\?xml[^>]*\?>/, "").replace(/<!--[\s\S]*?-->/g, "");
  const stack: string[] = [];
  let root = "";
  let elements = 0;
  let pos = 0;
  const entity = /^&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/;
  const checkText = (t: string, where: number) => {
    for (let i = t.indexOf("&"); i >= 0; i = t.indexOf("&", i + 1)) {
      if (!entity.test(t.slice(i))) throw new Error(`stray & at ${where + i}`);
    }
  };
  while (pos < body.length) {
    const lt = body.indexOf("<", pos);
    if (lt < 0) {
      if (body.slice(pos).trim() !== "") throw new Error("text after the root element");
      break;
    }
    const text = body.slice(pos, lt);
    if (stack.length === 0 && text.trim() !== "") throw new Error(`text outside the root at ${pos}`);
    checkText(text, pos);
    const gt = body.indexOf(">", lt);
    if (gt < 0) throw new Error(`unterminated tag at ${lt}`);
    const tag = body.slice(lt + 1, gt);
    if (tag.startsWith("/")) {
      const name = tag.slice(1).trim();
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}> at ${lt}`);
    } else {
      const selfClosing = tag.endsWith("/");
      const inner = selfClosing ? tag.slice(0, -1) : tag;
      const m = /^([A-Za-z_][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*="[^"<]*")*)\s*$/.exec(inner);
      if (m === null) throw new Error(`malformed tag <${tag}> at ${lt}`);
      const attrs = [...m[2]!.matchAll(/([A-Za-z_][\w.:-]*)="([^"]*)"/g)];
      const names = new Set<string>();
      for (const a of attrs) {
        if (names.has(a[1]!)) throw new Error(`duplicate attribute ${a[1]} in <${m[1]}>`);
        names.add(a[1]!);
        checkText(a[2]!, lt);
      }
      if (stack.length === 0) {
        if (root !== "") throw new Error("more than one root element");
        root = m[1]!;
      }
      elements++;
      if (!selfClosing) stack.push(m[1]!);
    }
    pos = gt + 1;
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join("> <")}>`);
  if (root === "") throw new Error("no root element");
  return { root, elements };
}
