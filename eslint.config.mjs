// Lint rules that catch bugs, not taste: layout is Prettier's (.prettierrc.json), run by `npm run lint`.
// Type-aware (typescript-eslint strictTypeChecked): a floating promise, an un-awaited
// assert.rejects, an error thrown without its cause are found only with the types.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Read-only globals of the plain-JavaScript build scripts (TypeScript checks the .ts files). */
const NODE_GLOBALS = { process: 'readonly', console: 'readonly', URL: 'readonly' };

export default tseslint.config(
  // Build output and golden files are not code to lint.
  { ignores: ['dist/**', 'test/golden/**'] },
  js.configs.recommended,
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // noUncheckedIndexedAccess already makes every index a decision; a `!` is that decision, written down.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // `() => void x++` and `=> set.add(x)` as callbacks read clearly; the rule is about style.
      '@typescript-eslint/no-confusing-void-expression': 'off',
      // Objects here are factory closures, not classes: their function members use no `this`, which
      // the rule cannot see through interfaces (all of its findings were such members).
      '@typescript-eslint/unbound-method': 'off',
      // An async function without await is how a fake or a runner returns a rejection instead of throwing.
      '@typescript-eslint/require-await': 'off',
      // It trusts declared types that lie at runtime (spawnSync's stdout is null when the spawn fails)
      // and would remove the guards that keep those paths from crashing.
      '@typescript-eslint/no-unnecessary-condition': 'off',
      // Numbers, booleans and null/undefined print as themselves; objects ("[object Object]") stay errors.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      // `() => void count++` is this project's way to say a callback returns nothing.
      '@typescript-eslint/no-meaningless-void-operator': 'off',
      // The project writes string unions, not enums; the rule cost 2.7 s of a 30 s run for nothing.
      '@typescript-eslint/no-unsafe-enum-assignment': 'off',
      // `_name` marks a binding kept on purpose (a destructured field left out of `...rest`).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true }],
      // node:test's test()/describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }] }],
    },
  },
  {
    // A function that grows past 150 lines is two things (HOUSE-STYLE.md, rule 6).
    files: ['src/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 150, skipBlankLines: true, skipComments: true }] },
  },
  {
    // Tests read the CLI's JSON output with JSON.parse: a parsed-input boundary, checked by the assertions.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
  {
    // Plain-JavaScript build scripts and this file: outside tsconfig, so linted without types.
    files: ['**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: NODE_GLOBALS },
  },
);
