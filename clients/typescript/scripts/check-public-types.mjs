// Fails if `any` appears in the package's public types: the declarations tsc emits to dist/.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const dist = new URL("../dist/", import.meta.url).pathname;
const found = [];
for (const name of readdirSync(dist).filter((file) => file.endsWith(".d.ts"))) {
  const text = readFileSync(join(dist, name), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, (comment) => comment.replace(/[^\n]/g, " "))
    .replace(/\/\/.*$/gm, "");
  text.split("\n").forEach((line, index) => {
    if (/\bany\b/.test(line)) found.push(`dist/${name}:${index + 1}: ${line.trim()}`);
  });
}
if (found.length > 0) {
  console.error(`\`any\` in the public types:\n${found.join("\n")}`);
  process.exit(1);
}
console.log("no `any` in the public types (dist/*.d.ts)");
