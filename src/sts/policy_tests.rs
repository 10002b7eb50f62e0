//! Tables of policy bodies and what `parse` must make of them.

use super::*;

fn pats(list: &[&str]) -> Vec<Pattern> {
    list.iter().map(|p| Pattern::parse(p).unwrap()).collect()
}

fn ok(mode: Mode, mx: &[&str], max_age: u64, notes: &[&str]) -> Result<Policy, PolicyError> {
    Ok(Policy {
        mode,
        mx: pats(mx),
        max_age,
        notes: notes.iter().map(|s| s.to_string()).collect(),
    })
}

fn err(line: Option<usize>, kind: ErrorKind) -> Result<Policy, PolicyError> {
    Err(PolicyError { line, kind })
}

#[test]
fn valid_policies() {
    let table: Vec<(&str, Result<Policy, PolicyError>)> = vec![
        // RFC 8461 §3.2's example, CRLF.
        (
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
            ok(Mode::Enforce, &["mail.example.com", "*.example.net", "backupmx.example.com"], 604800, &[]),
        ),
        // LF, no final terminator, any field order.
        (
            "mx: mx.example.com\nmax_age: 86400\nmode: testing\nversion: STSv1",
            ok(Mode::Testing, &["mx.example.com"], 86400, &[]),
        ),
        // Mixed line ends, spaces and tabs after the colon and at the end.
        (
            "version:STSv1\nmode:\tenforce \r\nmx:  MX.Example.COM\t\nmax_age: 0\r\n",
            ok(Mode::Enforce, &["mx.example.com"], 0, &[]),
        ),
        // mode none needs no mx.
        ("version: STSv1\nmode: none\nmax_age: 86400\n", ok(Mode::None, &[], 86400, &[])),
        // Trailing empty lines are tolerated.
        (
            "version: STSv1\nmode: none\nmax_age: 1\n\n\r\n",
            ok(Mode::None, &[], 1, &[]),
        ),
        // The largest max_age.
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557600\n",
            ok(Mode::Enforce, &["a.example"], 31_557_600, &[]),
        ),
        // Unknown fields (any visible value, inner spaces, UTF-8) are ignored.
        (
            "version: STSv1\nmode: enforce\nx-note: see https://example.com/a?b=c;d\nextension.1: caf\u{e9} au lait\nmx: a.example\nmax_age: 60\n",
            ok(
                Mode::Enforce,
                &["a.example"],
                60,
                &["line 3: unknown field `x-note` ignored", "line 4: unknown field `extension.1` ignored"],
            ),
        ),
        // Duplicate fields: the first counts; mx accumulates.
        (
            "version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmx: b.example\nmax_age: 60\nmax_age: 31557600\nversion: STSv1\n",
            ok(
                Mode::Enforce,
                &["a.example", "b.example"],
                60,
                &[
                    "line 3: repeated `mode` ignored (the first one counts)",
                    "line 7: repeated `max_age` ignored (the first one counts)",
                    "line 8: repeated `version` ignored (the first one counts)",
                ],
            ),
        ),
    ];
    for (body, want) in table {
        assert_eq!(parse(body.as_bytes()), want, "{body:?}");
    }
}

#[test]
fn each_error_names_its_line() {
    use ErrorKind::*;
    let table: Vec<(&str, Result<Policy, PolicyError>)> = vec![
        ("", err(None, Empty)),
        ("\n\n", err(None, Empty)),
        (
            "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
            err(Some(1), Version("STSv2".into())),
        ),
        ("version: stsv1\n", err(Some(1), Version("stsv1".into()))),
        (
            "version: STSv1\nmode: enforced\n",
            err(Some(2), Mode("enforced".into())),
        ),
        (
            "version: STSv1\nmode: Enforce\n",
            err(Some(2), Mode("Enforce".into())),
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n",
            err(Some(4), MaxAge("1d".into())),
        ),
        (
            "version: STSv1\nmax_age: -1\n",
            err(Some(2), MaxAge("-1".into())),
        ),
        (
            "version: STSv1\nmax_age: 12345678901\n",
            err(Some(2), MaxAge("12345678901".into())),
        ),
        (
            "version: STSv1\nmax_age: 31557601\n",
            err(Some(2), MaxAgeTooLarge(31_557_601)),
        ),
        (
            "version: STSv1\nmax_age: 9999999999\n",
            err(Some(2), MaxAgeTooLarge(9_999_999_999)),
        ),
        (
            "version: STSv1\nmode: enforce\nmx: mx.*.example\n",
            err(Some(3), Mx(PatternError::Wildcard("mx.*.example".into()))),
        ),
        (
            "version: STSv1\nmode: enforce\nmx: mx_1.example\n",
            err(Some(3), Mx(PatternError::NotADomain("mx_1.example".into()))),
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example b.example\n",
            err(
                Some(3),
                Mx(PatternError::NotADomain("a.example b.example".into())),
            ),
        ),
        (
            "version: STSv1\nmode enforce\n",
            err(Some(2), NotAField("mode enforce".into())),
        ),
        (
            "version: STSv1\n mode: enforce\n",
            err(Some(2), FieldName(" mode".into())),
        ),
        (
            "version: STSv1\nmode : enforce\n",
            err(Some(2), FieldName("mode ".into())),
        ),
        (
            "version: STSv1\n: enforce\n",
            err(Some(2), FieldName("".into())),
        ),
        (
            "version: STSv1\nmode:\n",
            err(Some(2), Value("mode".into(), "".into())),
        ),
        (
            "version: STSv1\nx: a\u{1}b\n",
            err(Some(2), Value("x".into(), "a\u{1}b".into())),
        ),
        ("version: STSv1\n\nmode: enforce\n", err(Some(2), EmptyLine)),
        (
            "version: STSv1\n   \nmode: enforce\n",
            err(Some(2), NotAField("   ".into())),
        ),
        ("version: STSv1\rmode: enforce\n", err(Some(1), BareCr)),
        (
            "version: STSv1\r\nmode: enforce\r\r\n",
            err(Some(2), BareCr),
        ),
        (
            "mode: enforce\nmx: a.example\nmax_age: 1\n",
            err(
                None,
                Missing {
                    field: "version",
                    hint: String::new(),
                },
            ),
        ),
        (
            "version: STSv1\nmx: a.example\nmax_age: 1\n",
            err(
                None,
                Missing {
                    field: "mode",
                    hint: String::new(),
                },
            ),
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\n",
            err(
                None,
                Missing {
                    field: "max_age",
                    hint: String::new(),
                },
            ),
        ),
        (
            "version: STSv1\nmode: enforce\nmax_age: 1\n",
            err(None, NoMx(super::Mode::Enforce)),
        ),
        (
            "version: STSv1\nmode: testing\nmax_age: 1\n",
            err(None, NoMx(super::Mode::Testing)),
        ),
        // Field names are case-sensitive: `Mode` is an unknown field.
        (
            "version: STSv1\nMode: enforce\nmx: a.example\nmax_age: 1\n",
            err(
                None,
                Missing {
                    field: "mode",
                    hint: " (line 2 has `Mode`: field names are case-sensitive)".into(),
                },
            ),
        ),
    ];
    for (body, want) in table {
        assert_eq!(parse(body.as_bytes()), want, "{body:?}");
    }
}

#[test]
fn not_utf8_names_the_line() {
    let body = b"version: STSv1\nmode: enforce\nx: \xff\xfe\n";
    assert_eq!(parse(body), err(Some(3), ErrorKind::NotUtf8));
}

#[test]
fn oversized_bodies_are_refused_whole() {
    let mut body = b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 60\n".to_vec();
    let pad = format!("x-pad: {}\n", "p".repeat(1000));
    while body.len() <= MAX_BODY {
        body.extend_from_slice(pad.as_bytes());
    }
    let size = body.len();
    assert_eq!(parse(&body), err(None, ErrorKind::TooLarge(size)));
    // Exactly at the limit is fine.
    body.truncate(MAX_BODY);
    while body.last() != Some(&b'\n') {
        body.pop();
    }
    assert!(parse(&body).is_ok());
}

#[test]
fn crlf_and_lf_give_the_same_policy() {
    let lf = "version: STSv1\nmode: enforce\nmx: a.example\nmx: *.b.example\nmax_age: 86400\n";
    let crlf = lf.replace('\n', "\r\n");
    assert_eq!(parse(lf.as_bytes()), parse(crlf.as_bytes()));
    assert!(parse(lf.as_bytes()).is_ok());
}

#[test]
fn errors_read_as_sentences() {
    let e =
        parse(b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 4: max_age 99999999 is more than the maximum of 31557600 (one year)"
    );
    let e = parse(b"version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 9\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 3: mx \"*.*.example\": a wildcard may only be the whole left-most label (\"*.example.com\")"
    );
    let e = parse(b"version: STSv1\nmode: enforce\nmax_age: 9\n").unwrap_err();
    assert_eq!(e.to_string(), "mode enforce needs at least one `mx` field");
}
