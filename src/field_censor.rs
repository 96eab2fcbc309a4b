//! Redaction of the context's fields in a logger's lines. JS redacts what
//! it serializes (the logged object, bindings, base); the fields come from
//! the store's record, so the logger's one-key paths (`"token"`, or `"*"`)
//! are applied here as the line is written. Field values are scalars, so a
//! deeper path never reaches one.

/// What a destination does with the context's fields.
pub enum FieldCensor {
  /// Every field is written as it is.
  None,
  /// These keys (every key when `all`) are written with `with`, a plain
  /// string escaped like any other, or left out when `with` is `None`.
  Keys { keys: Vec<Box<str>>, all: bool, with: Option<Box<str>> },
}

/// What happens to one field.
#[derive(Debug, PartialEq)]
pub enum Censored<'a> {
  Keep,
  Replace(&'a str),
  Remove,
}

impl FieldCensor {
  /// `keys` are the redacted top-level keys (`"*"` for all); `with` the
  /// censor, or `None` to leave the fields out.
  pub fn new(keys: Vec<String>, with: Option<String>) -> FieldCensor {
    if keys.is_empty() {
      return FieldCensor::None;
    }
    let all = keys.iter().any(|k| k == "*");
    FieldCensor::Keys { keys: keys.into_iter().map(Into::into).collect(), all, with: with.map(Into::into) }
  }

  pub fn of(&self, key: &str) -> Censored<'_> {
    match self {
      FieldCensor::None => Censored::Keep,
      FieldCensor::Keys { keys, all, with } => {
        if !*all && !keys.iter().any(|k| &**k == key) {
          Censored::Keep
        } else if let Some(text) = with {
          Censored::Replace(text)
        } else {
          Censored::Remove
        }
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn named_keys_are_replaced_or_removed_and_others_kept() {
    let replace = FieldCensor::new(vec!["token".into(), "auth".into()], Some("[Redacted]".into()));
    assert_eq!(replace.of("token"), Censored::Replace("[Redacted]"));
    assert_eq!(replace.of("auth"), Censored::Replace("[Redacted]"));
    assert_eq!(replace.of("tenant"), Censored::Keep);
    assert_eq!(replace.of("Token"), Censored::Keep, "keys match exactly, as JS paths do");
    let remove = FieldCensor::new(vec!["token".into()], None);
    assert_eq!(remove.of("token"), Censored::Remove);
    assert_eq!(remove.of("tenant"), Censored::Keep);
  }

  #[test]
  fn a_wildcard_takes_every_key_and_no_keys_take_none() {
    let all = FieldCensor::new(vec!["*".into()], Some("x".into()));
    assert_eq!(all.of("anything"), Censored::Replace("x"));
    assert_eq!(FieldCensor::new(vec![], Some("x".into())).of("token"), Censored::Keep);
    assert_eq!(FieldCensor::None.of("token"), Censored::Keep);
  }
}
