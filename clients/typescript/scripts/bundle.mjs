// Bundle ENTRY (TypeScript) and its dependencies into OUTFILE, one browser script:
//   node scripts/bundle.mjs ENTRY OUTFILE
// The demo's committed bundle is made this way (npm run bundle:demo), and its test
// checks that doing it again gives the same bytes.
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

// zod re-exports the messages of every language (`z.locales`, 60 % of the bundle); a
// page uses the English ones, which zod configures itself. Only those are kept.
const englishOnly = {
  name: "zod-english-only",
  setup(builder) {
    builder.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      args.importer.includes("node_modules/zod/")
        ? { path: fileURLToPath(new URL("zod-locales.mjs", import.meta.url)) }
        : undefined,
    );
  },
};

const [entry, outfile] = process.argv.slice(2);
if (!entry || !outfile) {
  console.error("usage: node scripts/bundle.mjs ENTRY OUTFILE");
  process.exit(2);
}
await build({
  entryPoints: [entry],
  outfile,
  bundle: true,
  format: "iife",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  logLevel: "warning",
  plugins: [englishOnly],
});
