//! Answers checked against `docs/openapi.yaml`: the status is one the operation lists, the
//! content type one it documents, and a JSON body matches the response's schema.
//!
//! The spec's schemas are OpenAPI 3.0; they are turned into JSON Schema (2020-12) for the
//! `jsonschema` crate: `$ref`s inlined, `nullable` made a `null` type, annotations dropped.
//! An answer may carry only documented fields: every object schema that lists `properties` and
//! says nothing about `additionalProperties` is checked as closed, so a field the server adds
//! fails here until the spec names it (an `allOf` of several parts is closed as a whole, with
//! `unevaluatedProperties`). Maps (`additionalProperties: {…}`) stay open. A schema
//! keyword the conversion does not know fails loudly rather than being skipped.
//!
//! Shared by the wallet-server tests (through their HTTP helpers) and the end-to-end flow in
//! `tests/tests/flow.rs`, which includes this file by path.

#![allow(dead_code)]

use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub struct Spec {
    doc: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// The project's spec, read once per test binary.
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Spec::from_yaml(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    })
}

/// Panics unless the answer matches the spec (see [`Spec::check`]).
pub fn assert_answer(
    method: &str,
    uri: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) {
    if let Err(e) = spec().check(method, uri, status, content_type, body) {
        panic!("{method} {uri} → {status}: the answer breaks docs/openapi.yaml: {e}");
    }
}

/// Schema keywords the spec may use. Annotations are dropped; the rest mean in JSON Schema
/// what they mean in OpenAPI 3.0.
const ANNOTATIONS: [&str; 7] = [
    "description",
    "example",
    "default",
    "title",
    "deprecated",
    "readOnly",
    "writeOnly",
];
const ASSERTIONS: [&str; 13] = [
    "type",
    "enum",
    "format",
    "pattern",
    "required",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "multipleOf",
];

impl Spec {
    pub fn from_yaml(text: &str) -> Result<Spec, String> {
        let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        if !doc["paths"].is_object() {
            return Err("no `paths`".into());
        }
        Ok(Spec {
            doc,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// `(METHOD, template, status)` of every documented answer with a JSON body.
    pub fn json_answers(&self) -> Vec<(String, String, u16)> {
        let mut out = Vec::new();
        for (template, ops) in self.doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in ops.as_object().into_iter().flatten() {
                for status in op["responses"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.keys())
                {
                    let Ok(code) = status.parse::<u16>() else {
                        continue;
                    };
                    let json = self
                        .response(method, template, code)
                        .is_ok_and(|r| r["content"].get("application/json").is_some());
                    if json {
                        out.push((method.to_ascii_uppercase(), template.clone(), code));
                    }
                }
            }
        }
        out
    }

    /// The path template of the spec that `path` (no query) falls under, for `method`: literal
    /// segments must be equal, a `{name}` segment takes any one segment. Where several fit, the
    /// one with more literal segments wins.
    pub fn template(&self, method: &str, path: &str) -> Option<String> {
        let method = method.to_ascii_lowercase();
        let want: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, &String)> = None;
        for (template, ops) in self.doc["paths"].as_object()? {
            if ops.get(&method).is_none() {
                continue;
            }
            let have: Vec<&str> = template.split('/').collect();
            if have.len() != want.len() {
                continue;
            }
            let mut literal = 0;
            let fits = have.iter().zip(&want).all(|(h, w)| {
                if h.starts_with('{') && h.ends_with('}') {
                    !w.is_empty()
                } else {
                    literal += 1;
                    h == w
                }
            });
            if fits && best.is_none_or(|(n, _)| literal > n) {
                best = Some((literal, template));
            }
        }
        best.map(|(_, t)| t.clone())
    }

    /// The documented response of an operation for a status: the exact code, else `4XX`-style,
    /// else `default`; `$ref`s to `components/responses` followed.
    fn response(&self, method: &str, template: &str, status: u16) -> Result<&Value, String> {
        let op = &self.doc["paths"][template][method.to_ascii_lowercase()];
        let responses = op["responses"]
            .as_object()
            .ok_or_else(|| format!("{method} {template} is not in the spec"))?;
        let range = format!("{}XX", status / 100);
        let r = responses
            .get(&status.to_string())
            .or_else(|| responses.get(&range))
            .or_else(|| responses.get("default"))
            .ok_or_else(|| {
                let listed: Vec<&String> = responses.keys().collect();
                format!("status {status} is not documented for {method} {template} (listed: {listed:?})")
            })?;
        match r.get("$ref") {
            Some(Value::String(target)) => self.pointer(target),
            _ => Ok(r),
        }
    }

    fn pointer(&self, reference: &str) -> Result<&Value, String> {
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("only local $refs are followed: {reference}"))?;
        self.doc
            .pointer(pointer)
            .ok_or_else(|| format!("$ref to nothing: {reference}"))
    }

    /// The JSON Schema of the JSON body of `(method, template, status)`, or `None` when that
    /// response has no `application/json` content.
    pub fn response_schema(
        &self,
        method: &str,
        template: &str,
        status: u16,
    ) -> Result<Option<Value>, String> {
        let r = self.response(method, template, status)?;
        match r["content"].get("application/json") {
            Some(media) => {
                let schema = media.get("schema").ok_or_else(|| {
                    format!("{method} {template} {status}: JSON without a schema")
                })?;
                self.convert(schema, true, &mut Vec::new()).map(Some)
            }
            None => Ok(None),
        }
    }

    /// Checks a JSON body against the schema of `(method, template, status)`.
    pub fn check_json(
        &self,
        method: &str,
        template: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), String> {
        let key = format!("{} {template} {status}", method.to_ascii_uppercase());
        let validator = {
            let cached = self.validators.lock().unwrap().get(&key).cloned();
            match cached {
                Some(v) => v,
                None => {
                    let schema =
                        self.response_schema(method, template, status)?
                            .ok_or_else(|| {
                                format!("{key}: the spec documents no JSON body for this answer")
                            })?;
                    let v = jsonschema::options()
                        .should_validate_formats(true)
                        .build(&schema)
                        .map_err(|e| format!("{key}: the schema does not compile: {e}"))?;
                    let v = Arc::new(v);
                    self.validators
                        .lock()
                        .unwrap()
                        .insert(key.clone(), v.clone());
                    v
                }
            }
        };
        let errors: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("at '{}': {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{key}: {}\nbody: {}",
                errors.join("; "),
                short(body)
            ))
        }
    }

    /// Checks a whole answer: `uri` is a request target (`/path?query`); the operation is looked
    /// up by method and path. A path or method the spec does not list passes only as the router's
    /// own empty 404 or 405. The status must be documented; a documented body must come with one
    /// of its content types (a JSON one is checked against its schema); an answer documented
    /// without content must be empty.
    pub fn check(
        &self,
        method: &str,
        uri: &str,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<(), String> {
        let path = uri.split(['?', '#']).next().unwrap_or(uri);
        let Some(template) = self.template(method, path) else {
            if matches!(status, 404 | 405) && body.is_empty() {
                return Ok(());
            }
            return Err(format!(
                "no operation {method} {path} in the spec, yet a {status} answer with a body"
            ));
        };
        let response = self.response(method, &template, status)?;
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            return if body.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{method} {template} {status} is documented without a body, answered {} bytes: {}",
                    body.len(),
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ))
            };
        };
        let media = content_type
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("{method} {template} {status}: a body without Content-Type"))?;
        if !content.contains_key(&media) {
            let listed: Vec<&String> = content.keys().collect();
            return Err(format!(
                "{method} {template} {status} answered {media}; documented: {listed:?}"
            ));
        }
        if media != "application/json" {
            return Ok(());
        }
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            format!(
                "{method} {template} {status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )
        })?;
        self.check_json(method, &template, status, &value)
    }

    /// OpenAPI 3.0 schema → JSON Schema. `close`: whether an object schema without
    /// `additionalProperties` is closed (not for the members of an `allOf` that combines
    /// several, which each see only their own properties).
    fn convert(&self, s: &Value, close: bool, refs: &mut Vec<String>) -> Result<Value, String> {
        let Some(obj) = s.as_object() else {
            return Err(format!("a schema that is not an object: {s}"));
        };
        if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
            if obj.len() > 1 {
                return Err(format!(
                    "$ref {reference} with siblings (OpenAPI 3.0 ignores them; use allOf)"
                ));
            }
            if refs.iter().any(|r| r == reference) {
                return Err(format!("recursive $ref {reference} is not supported"));
            }
            refs.push(reference.to_owned());
            let out = self.convert(self.pointer(reference)?, close, refs);
            refs.pop();
            return out;
        }
        let mut out = Map::new();
        for (k, v) in obj {
            match k.as_str() {
                k if ANNOTATIONS.contains(&k) || k == "nullable" => {}
                "type" if !v.is_string() => {
                    return Err(format!(
                        "`type: {v}`: OpenAPI 3.0 takes one type (say `nullable: true` for null)"
                    ))
                }
                k if ASSERTIONS.contains(&k) => {
                    out.insert(k.to_owned(), v.clone());
                }
                "properties" => {
                    let props = v.as_object().ok_or("`properties` is not a map")?;
                    let mut converted = Map::new();
                    for (name, p) in props {
                        converted.insert(name.clone(), self.convert(p, true, refs)?);
                    }
                    out.insert(k.clone(), Value::Object(converted));
                }
                "items" => {
                    out.insert(k.clone(), self.convert(v, true, refs)?);
                }
                "additionalProperties" => {
                    let a = match v {
                        Value::Bool(_) => v.clone(),
                        _ => self.convert(v, true, refs)?,
                    };
                    out.insert(k.clone(), a);
                }
                "allOf" | "oneOf" | "anyOf" => {
                    let members = v.as_array().ok_or_else(|| format!("`{k}` is not a list"))?;
                    let close_members = k != "allOf" || members.len() == 1;
                    let converted = members
                        .iter()
                        .map(|m| self.convert(m, close_members, refs))
                        .collect::<Result<Vec<_>, _>>()?;
                    out.insert(k.clone(), Value::Array(converted));
                }
                other => {
                    return Err(format!(
                        "schema keyword `{other}` is not handled by tests/spec_check"
                    ))
                }
            }
        }
        if close && !out.contains_key("additionalProperties") {
            let parts = out
                .get("allOf")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if parts > 1 {
                // The parts were left open; what none of them evaluates is refused here.
                out.insert("unevaluatedProperties".into(), Value::Bool(false));
            } else if out.contains_key("properties") {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
        }
        if obj.get("nullable") == Some(&Value::Bool(true)) {
            return Ok(nullable(out));
        }
        Ok(Value::Object(out))
    }
}

/// `nullable: true`: `null` is one more allowed type (and enum value).
fn nullable(mut out: Map<String, Value>) -> Value {
    match out.get("type").cloned() {
        Some(Value::String(t)) => {
            out.insert("type".into(), serde_json::json!([t, "null"]));
            if let Some(Value::Array(values)) = out.get_mut("enum") {
                values.push(Value::Null);
            }
            Value::Object(out)
        }
        _ => serde_json::json!({"anyOf": [Value::Object(out), {"type": "null"}]}),
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 600 {
        return s;
    }
    let mut end = 600;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
