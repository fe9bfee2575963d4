// What the browser bundles get for zod's `locales`: English only (see bundle.mjs).
export { default as en } from "zod/v4/locales/en.js";
