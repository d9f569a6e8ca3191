import js from "@eslint/js";
import globals from "globals";
import reactHooks from "eslint-plugin-react-hooks";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist", "src/gen", "node_modules"] },
  {
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    files: ["**/*.{ts,tsx}"],
    languageOptions: { ecmaVersion: 2022, globals: { ...globals.browser } },
    plugins: { "react-hooks": reactHooks },
    rules: {
      "react-hooks/rules-of-hooks": "error",
      "react-hooks/exhaustive-deps": "warn",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
  {
    // The standalone client (importable without the app): no UI, nothing of
    // the app outside src/client but the generated code, and nothing Node-only
    // except in its Node entry, so a browser bundle never pulls in node:http2.
    files: ["src/client/**/*.ts"],
    ignores: ["src/client/node.ts", "src/client/**/*.test.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["react", "react/**", "react-dom", "react-dom/**", "@tanstack/**"], message: "src/client has no UI." },
            { group: ["../*", "!../gen", "!../gen/**"], message: "src/client may only import src/gen from the app." },
            { regex: "/\\.\\.(/|$)", message: "src/client may only import src/gen from the app." },
            { group: ["@connectrpc/connect-node", "node:*"], message: "Node-only code belongs in src/client/node.ts." },
          ],
        },
      ],
    },
  },
  {
    files: ["src/client/node.ts", "src/client/**/*.test.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["react", "react/**", "react-dom", "react-dom/**", "@tanstack/**"], message: "src/client has no UI." },
            { group: ["../*", "!../gen", "!../gen/**"], message: "src/client may only import src/gen from the app." },
            { regex: "/\\.\\.(/|$)", message: "src/client may only import src/gen from the app." },
          ],
        },
      ],
    },
  },
  {
    files: ["**/*.{js,mjs}"],
    extends: [js.configs.recommended],
    languageOptions: { globals: { ...globals.node } },
  },
);
