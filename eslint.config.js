// ESLint for the web console (sipresponder/ops/console/*.js): `npm ci`, then `npm run lint`
// (.ci/run does both; tests/unit/ops/test_console_eslint.py runs the same check).
// The console's files are ES modules loaded by the browser (index.html adds console.js
// as <script type="module">, which imports the rest), so browser globals and module
// scope, nothing from node.
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    // Not the project's code: virtual environments (.venv holds the JavaScript of
    // installed packages such as selenium), build outputs and the fuzzers' folders.
    ignores: [".venv/**", "build/**", "dist/**", "fuzz/**", ".devbench/**"],
  },
  js.configs.recommended,
  {
    files: ["sipresponder/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: globals.browser,
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    // Beyond the recommended set, rules for bugs the recommended set lets through
    // (a loose ==, a name hiding another, a callback that forgets to return) and
    // string-to-code calls (eval and its kin), which the console never needs.
    rules: {
      eqeqeq: ["error", "smart"],
      "no-var": "error",
      "prefer-const": "error",
      "no-shadow": "error",
      "array-callback-return": "error",
      "no-promise-executor-return": "error",
      "no-self-compare": "error",
      "no-template-curly-in-string": "error",
      "no-unmodified-loop-condition": "error",
      "no-unreachable-loop": "error",
      "no-constructor-return": "error",
      "no-throw-literal": "error",
      "prefer-promise-reject-errors": "error",
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
    },
  },
  {
    // index.html's inline bootstrap, a classic script that must run before any module
    // (it writes the import map): tests/unit/ops/test_console_eslint.py passes it on
    // stdin under this name, its lines where they are in index.html.
    files: ["sipresponder/**/index.html.js"],
    languageOptions: { sourceType: "script" },
    rules: { "no-var": "off" },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "module", globals: globals.node },
  },
];
