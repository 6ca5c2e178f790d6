//! Which JSON fields make a document's id, text and metadata.

use crate::Document;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Field mapping for JSON records. WuDao users join `title` and `content`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    /// Fields joined (non-empty ones, with `text_joiner`) into the text.
    #[serde(default = "default_text_fields")]
    pub text_fields: Vec<String>,
    #[serde(default = "default_joiner")]
    pub text_joiner: String,
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// Fields copied into metadata; `None` copies every field that is not text or id.
    #[serde(default)]
    pub metadata_fields: Option<Vec<String>>,
    /// When set, a record with a field outside this list (and outside the text and id fields)
    /// is reported as `unknown_field` (and kept, unless the run is strict).
    #[serde(default)]
    pub known_fields: Option<Vec<String>>,
}

fn default_text_fields() -> Vec<String> {
    vec!["text".to_string()]
}
fn default_joiner() -> String {
    "\n".to_string()
}
fn default_id_field() -> String {
    "id".to_string()
}

impl Default for FieldMap {
    fn default() -> Self {
        FieldMap {
            text_fields: default_text_fields(),
            text_joiner: default_joiner(),
            id_field: default_id_field(),
            metadata_fields: None,
            known_fields: None,
        }
    }
}

impl FieldMap {
    /// WuDao's record layout: text is `title` + `content`.
    pub fn wudao() -> Self {
        FieldMap {
            text_fields: vec!["title".into(), "content".into()],
            known_fields: Some(
                [
                    "id",
                    "uniqueKey",
                    "titleUkey",
                    "dataType",
                    "title",
                    "content",
                ]
                .map(String::from)
                .to_vec(),
            ),
            metadata_fields: Some(vec!["dataType".into()]),
            ..FieldMap::default()
        }
    }

    /// Builds a document from a parsed record; `Err((kind, message))` when it cannot.
    /// `fallback_id` names records without an id field. The second value lists unknown fields.
    pub fn to_document(
        &self,
        value: Value,
        fallback_id: String,
        source: &str,
    ) -> Result<(Document, Vec<String>), (String, String)> {
        let Value::Object(mut map) = value else {
            return Err(("not_an_object".into(), "record is not a JSON object".into()));
        };
        let unknown: Vec<String> = match &self.known_fields {
            Some(known) => map
                .keys()
                .filter(|k| {
                    !known.contains(k) && !self.text_fields.contains(k) && **k != self.id_field
                })
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        let mut parts = Vec::new();
        for f in &self.text_fields {
            match map.remove(f) {
                Some(Value::String(s)) if !s.is_empty() => parts.push(s),
                Some(Value::String(_)) | Some(Value::Null) | None => {}
                Some(other) => {
                    return Err((
                        "bad_text".into(),
                        format!("field `{f}` is {other}, not text"),
                    ))
                }
            }
        }
        if parts.is_empty() {
            return Err((
                "no_text".into(),
                format!("none of the text fields {:?} holds text", self.text_fields),
            ));
        }
        let id = match map.remove(&self.id_field) {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => fallback_id,
        };
        let mut metadata = Map::new();
        match &self.metadata_fields {
            Some(keep) => {
                for k in keep {
                    if let Some(v) = map.remove(k) {
                        metadata.insert(k.clone(), v);
                    }
                }
            }
            None => metadata = map,
        }
        metadata.insert("source".into(), Value::String(source.to_string()));
        Ok((
            Document {
                id,
                text: parts.join(&self.text_joiner),
                metadata,
            },
            unknown,
        ))
    }
}
