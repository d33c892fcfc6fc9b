// k8s_validate.cjs FILE: each object of FILE ([{module, object}]) validated against the
// Kubernetes OpenAPI schemas with the npm package kubernetes-models (ajv underneath). Prints a
// JSON list: null for a valid object, else the validator's message. Run by check_k8s.py with
// NODE_PATH at the packages it installed.
"use strict";
const fs = require("fs");

const items = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const out = items.map(({ module, object }) => {
  let mod;
  try {
    mod = require(module);
  } catch (e) {
    return "no model " + module + ": " + e.message;
  }
  const Model = mod[object.kind];
  if (!Model) return "no model " + object.kind + " in " + module;
  try {
    new Model(object).validate();
    return null;
  } catch (e) {
    return e.message;
  }
});
process.stdout.write(JSON.stringify(out) + "\n");
