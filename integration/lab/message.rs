//! Test messages with awkward content, and the split of a delivered file
//! into "header fields the MTAs prepended" and "the bytes that were sent".
//!
//! Messages are kept with LF line ends, as Postfix and Exim store them;
//! `client::to_wire` makes the CRLF, dot-stuffed DATA form.

/// A message that exercises transparency: fixed headers, an 8-bit UTF-8
/// line, lines starting with dots (one a lone "."), an empty line, a line
/// of exactly 998 octets (RFC 5321's limit without CRLF), trailing blanks.
pub fn tricky(tag: &str, from: &str, to: &[&str]) -> Vec<u8> {
    let mut m = String::new();
    m.push_str(&format!("Message-ID: <{tag}.lab@legacy.lab.test>\n"));
    m.push_str("Date: Mon, 02 Jan 2023 03:04:05 +0000\n");
    m.push_str(&format!("From: Lab Sender <{from}>\n"));
    m.push_str(&format!("To: {}\n", to.join(", ")));
    m.push_str(&format!("Subject: danegate lab {tag}\n"));
    m.push('\n');
    m.push_str("First body line.\n");
    m.push_str("8-bit UTF-8: Grüße aus dem Labor, ça va? Ελληνικά ✓\n");
    m.push_str(".a line starting with a dot\n");
    m.push_str("..two dots\n");
    m.push_str(".\n");
    m.push('\n');
    m.push_str("after an empty line, trailing blanks:  \t\n");
    let long: String = "0123456789".chars().cycle().take(998).collect();
    m.push_str(&long);
    m.push('\n');
    m.push_str("Last line.\n");
    m.into_bytes()
}

/// A short plain message.
pub fn simple(tag: &str, from: &str, to: &[&str]) -> Vec<u8> {
    format!(
        "Message-ID: <{tag}.lab@legacy.lab.test>\n\
         Date: Mon, 02 Jan 2023 03:04:05 +0000\n\
         From: <{from}>\n\
         To: {}\n\
         Subject: danegate lab {tag}\n\
         \n\
         Body of {tag}.\n",
        to.join(", ")
    )
    .into_bytes()
}

/// One header field as delivered: its name and its full text, continuation
/// lines included.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub text: String,
}

/// Splits the first `n` header fields off a delivered message. Returns them
/// and the remaining bytes (which should be the submitted message).
pub fn split_prepended(delivered: &[u8], n: usize) -> (Vec<Field>, &[u8]) {
    let mut fields: Vec<Field> = Vec::new();
    let mut pos = 0;
    while pos < delivered.len() {
        let end = delivered[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i + 1)
            .unwrap_or(delivered.len());
        let line = String::from_utf8_lossy(&delivered[pos..end]).into_owned();
        let continuation = line.starts_with(' ') || line.starts_with('\t');
        if continuation {
            match fields.last_mut() {
                Some(f) => f.text.push_str(&line),
                None => break,
            }
        } else {
            if fields.len() == n {
                break;
            }
            let Some((name, _)) = line.split_once(':') else {
                break;
            };
            fields.push(Field {
                name: name.to_string(),
                text: line.clone(),
            });
        }
        pos = end;
    }
    (fields, &delivered[pos..])
}

/// Names of fields, for comparing with an expected list.
pub fn names(fields: &[Field]) -> Vec<&str> {
    fields.iter().map(|f| f.name.as_str()).collect()
}

/// Every run of whitespace (line folds included) as one space: for
/// searching texts that MTAs wrap, such as bounce messages.
pub fn squash_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where two byte strings first differ, for readable failures.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<String> {
    let i = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then_some(a.len().min(b.len())))?;
    let ctx = |s: &[u8]| {
        let lo = i.saturating_sub(40);
        let hi = (i + 40).min(s.len());
        String::from_utf8_lossy(&s[lo..hi]).into_owned()
    };
    Some(format!(
        "byte {i} (lengths {} vs {}):\n  left:  {:?}\n  right: {:?}",
        a.len(),
        b.len(),
        ctx(a),
        ctx(b)
    ))
}

/// Asserts the delivered file is `prepended` fields (by name, in order)
/// followed by exactly `original`. Returns the prepended fields.
pub fn assert_delivered_exactly(
    delivered: &[u8],
    prepended: &[&str],
    original: &[u8],
) -> Vec<Field> {
    let (fields, rest) = split_prepended(delivered, prepended.len());
    let text = String::from_utf8_lossy(delivered);
    assert_eq!(
        names(&fields),
        prepended,
        "prepended header fields differ; delivered message:\n{text}"
    );
    if let Some(diff) = first_difference(rest, original) {
        panic!("delivered message differs from the submitted one at {diff}\ndelivered message:\n{text}");
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_folded_fields_together() {
        let m = b"Return-Path: <a@b>\nReceived: from x\n\tby y\n\tfor <z>\nReceived: by w\nSubject: s\n\nbody\n";
        let (f, rest) = split_prepended(m, 3);
        assert_eq!(names(&f), vec!["Return-Path", "Received", "Received"]);
        assert_eq!(f[1].text, "Received: from x\n\tby y\n\tfor <z>\n");
        assert_eq!(rest, b"Subject: s\n\nbody\n");
    }

    #[test]
    fn tricky_message_has_a_998_octet_line() {
        let m = tricky("t", "a@b", &["c@d"]);
        let text = String::from_utf8(m).unwrap();
        assert!(text.lines().any(|l| l.len() == 998));
        assert!(text.lines().any(|l| l == "."));
    }

    #[test]
    fn first_difference_reports_length_mismatch() {
        assert!(first_difference(b"abc", b"abc").is_none());
        assert!(first_difference(b"abc", b"abcd")
            .unwrap()
            .starts_with("byte 3"));
    }
}
