//! W3C Baggage: the `baggage` header.
//!
//! Values are percent-decoded into UTF-8 on input and percent-encoded on
//! output. Invalid list members are skipped (one bad entry does not cost the
//! others), and the specification's limits hold in both directions: at most
//! 180 list members and 8192 bytes.

pub const MAX_MEMBERS: usize = 180;
pub const MAX_BYTES: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaggageEntry {
  pub key: String,
  pub value: String,
  /// Raw properties (`;k=v` or `;k`), kept as received for propagation.
  pub properties: Vec<String>,
}

fn trim_ows(s: &str) -> &str {
  s.trim_matches(|c| c == ' ' || c == '\t')
}

/// RFC 7230 `token` characters.
fn is_tchar(c: u8) -> bool {
  c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn valid_key(key: &str) -> bool {
  !key.is_empty() && key.bytes().all(is_tchar)
}

/// `baggage-octet`: printable ASCII except space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(c: u8) -> bool {
  matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn percent_decode(raw: &str) -> Option<String> {
  let bytes = raw.as_bytes();
  let mut out = Vec::with_capacity(bytes.len());
  let mut i = 0;
  while i < bytes.len() {
    let c = bytes[i];
    if c == b'%' {
      let hex = bytes.get(i + 1..i + 3)?;
      let hi = (hex[0] as char).to_digit(16)?;
      let lo = (hex[1] as char).to_digit(16)?;
      out.push((hi * 16 + lo) as u8);
      i += 3;
    } else if is_baggage_octet(c) {
      out.push(c);
      i += 1;
    } else {
      return None;
    }
  }
  String::from_utf8(out).ok()
}

fn percent_encode(value: &str, out: &mut String) {
  const HEX: &[u8; 16] = b"0123456789ABCDEF";
  for &c in value.as_bytes() {
    if is_baggage_octet(c) && c != b'%' {
      out.push(c as char);
    } else {
      out.push('%');
      out.push(HEX[(c >> 4) as usize] as char);
      out.push(HEX[(c & 0xf) as usize] as char);
    }
  }
}

fn parse_member(member: &str) -> Option<BaggageEntry> {
  let mut parts = member.split(';');
  let kv = parts.next()?;
  let eq = kv.find('=')?;
  let key = trim_ows(&kv[..eq]);
  if !valid_key(key) {
    return None;
  }
  let value = percent_decode(trim_ows(&kv[eq + 1..]))?;
  let mut properties = Vec::new();
  for prop in parts {
    let prop = trim_ows(prop);
    let valid = match prop.find('=') {
      Some(eq) => valid_key(trim_ows(&prop[..eq])) && percent_decode(trim_ows(&prop[eq + 1..])).is_some(),
      None => valid_key(prop),
    };
    if !valid {
      return None;
    }
    properties.push(prop.to_owned());
  }
  Some(BaggageEntry { key: key.to_owned(), value, properties })
}

/// Parses a `baggage` header. Headers over 8192 bytes are ignored whole;
/// invalid members are skipped; members past the 180th are dropped.
pub fn parse_baggage(header: &str) -> Vec<BaggageEntry> {
  if header.len() > MAX_BYTES {
    return Vec::new();
  }
  header.split(',').map(trim_ows).filter(|m| !m.is_empty()).filter_map(parse_member).take(MAX_MEMBERS).collect()
}

/// Formats entries as a `baggage` header, dropping members that would take
/// it past 180 members or 8192 bytes.
pub fn format_baggage(entries: &[BaggageEntry]) -> String {
  let mut out = String::new();
  let mut count = 0;
  let mut member = String::new();
  for entry in entries {
    if count == MAX_MEMBERS || !valid_key(&entry.key) {
      continue;
    }
    member.clear();
    member.push_str(&entry.key);
    member.push('=');
    percent_encode(&entry.value, &mut member);
    for prop in &entry.properties {
      member.push(';');
      member.push_str(prop);
    }
    let extra = if out.is_empty() { member.len() } else { member.len() + 1 };
    if out.len() + extra > MAX_BYTES {
      continue;
    }
    if !out.is_empty() {
      out.push(',');
    }
    out.push_str(&member);
    count += 1;
  }
  out
}

#[cfg(test)]
mod tests {
  use super::*;

  fn entry(key: &str, value: &str) -> BaggageEntry {
    BaggageEntry { key: key.into(), value: value.into(), properties: vec![] }
  }

  #[test]
  fn parses_the_specification_examples() {
    let b = parse_baggage("key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue");
    assert_eq!(b.len(), 3);
    assert_eq!(
      b[0],
      BaggageEntry {
        key: "key1".into(),
        value: "value1".into(),
        properties: vec!["property1".into(), "property2".into()]
      }
    );
    assert_eq!(b[1], entry("key2", "value2"));
    assert_eq!(b[2].properties, vec!["propertyKey=propertyValue".to_string()]);
    let b = parse_baggage("userId=alice,serverNode=DF%2028,isProduction=false");
    assert_eq!(b[1].value, "DF 28");
  }

  #[test]
  fn percent_encoding_round_trips_utf8_and_reserved_characters() {
    let entries = vec![entry("k", "a b,c;d\\e\"f%g"), entry("unicode", "ünï 😀")];
    let header = format_baggage(&entries);
    assert!(!header.contains(' '));
    assert_eq!(parse_baggage(&header), entries);
  }

  #[test]
  fn skips_invalid_members_and_keeps_the_rest() {
    let b = parse_baggage("good=1,bad key=2,=3,noequals,bad=%zz,bad=\u{1}x,also-good=4, ,");
    assert_eq!(b, vec![entry("good", "1"), entry("also-good", "4")]);
  }

  #[test]
  fn enforces_member_and_byte_limits() {
    let many: Vec<String> = (0..200).map(|i| format!("k{i}=v")).collect();
    assert_eq!(parse_baggage(&many.join(",")).len(), MAX_MEMBERS);
    let huge = format!("k={}", "x".repeat(MAX_BYTES));
    assert!(parse_baggage(&huge).is_empty());

    let entries: Vec<BaggageEntry> = (0..300).map(|i| entry(&format!("key{i}"), &"v".repeat(60))).collect();
    let header = format_baggage(&entries);
    assert!(header.len() <= MAX_BYTES);
    assert!(parse_baggage(&header).len() <= MAX_MEMBERS);
  }
}
