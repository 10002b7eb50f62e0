//! `danegate tlsa generate` and `tlsa verify` (src/ops/tlsa/).
//!
//! `generate` is checked against the OpenSSL command line, the yardstick
//! operators use (`openssl x509 -pubkey -noout | openssl pkey -pubin
//! -outform DER | openssl sha256`), for RSA, ECDSA and Ed25519
//! certificates, for issuers (DANE-TA: the top of the chain by default),
//! and for key files (PKCS#8, PKCS#1, SEC1 and public keys, converted by
//! OpenSSL). `verify` must agree with the relay's verifier
//! (`verify_chain`) on the DANE test matrix of `dane_matrix.rs`: the
//! command reads PEM files and record texts, the verifier is given DER and
//! records directly.
//!
//! Needs `openssl` on the PATH (Debian: the `openssl` package); a missing
//! tool fails the test.

mod dane_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use dane_support::{names, Alg, Issued, Pki, Shape, Spec, Which};
use danegate::dns::Tlsa;
use danegate::ops::tlsa::{generate, verify, GenerateArgs, VerifyArgs};
use danegate::tls::dane::verify_chain;
use rustls::pki_types::UnixTime;

const BIN: &str = env!("CARGO_BIN_EXE_danegate");

/// A scratch directory, removed when dropped unless the test panicked.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "danegate-tlsa-{name}-{}-{nanos:09}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Runs a shell pipeline of openssl commands; its standard output.
fn sh(script: &str) -> Vec<u8> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -eo pipefail; {script}"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run sh: {e}"));
    assert!(
        out.status.success(),
        "{script} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The hex digest out of `openssl sha256` / `openssl sha512` output
/// (`SHA2-256(stdin)= 2c8a...`).
fn digest_of(output: Vec<u8>) -> String {
    let text = String::from_utf8(output).unwrap();
    let hex = text.split_whitespace().last().unwrap_or("").to_owned();
    assert!(
        hex.len() >= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "unexpected openssl output: {text:?}"
    );
    hex
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What OpenSSL computes for `selector mtype` of a PEM certificate.
fn openssl_cert(pem: &Path, selector: u8, mtype: u8) -> String {
    let p = pem.display();
    let selected = match selector {
        1 => format!("openssl x509 -in {p} -pubkey -noout | openssl pkey -pubin -outform DER"),
        _ => format!("openssl x509 -in {p} -outform DER"),
    };
    match mtype {
        1 => digest_of(sh(&format!("{selected} | openssl sha256"))),
        2 => digest_of(sh(&format!("{selected} | openssl sha512"))),
        _ => hex(&sh(&selected)),
    }
}

/// `openssl sha256` of a key file's public key in DER.
fn openssl_key(key: &Path, public: bool) -> String {
    let pubin = if public { " -pubin" } else { "" };
    digest_of(sh(&format!(
        "openssl pkey{pubin} -in {} -pubout -outform DER | openssl sha256",
        key.display()
    )))
}

fn gen_args(cert: &Path) -> GenerateArgs {
    GenerateArgs {
        cert: Some(cert.to_owned()),
        key: None,
        chain: None,
        usage: 3,
        selector: 1,
        mtype: 1,
        depth: None,
        name: "mx1.example.net".into(),
        port: 25,
        ttl: 3600,
    }
}

fn generated_hex(args: &GenerateArgs) -> String {
    hex(&generate(args)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .record
        .data)
}

fn leaf_pem(scratch: &Scratch, name: &str, issued: &Issued) -> PathBuf {
    scratch.write(name, issued.cert.pem())
}

#[test]
fn generate_matches_openssl_for_rsa_and_ecdsa_leaves() {
    let scratch = Scratch::new("generate-leaves");
    for alg in [Alg::EcdsaP256, Alg::Rsa2048] {
        let pki = Pki::with(Spec {
            leaf_alg: alg,
            ..Spec::default()
        });
        let pem = leaf_pem(&scratch, &format!("{alg:?}.pem"), &pki.leaf);
        for (selector, mtype) in [(1, 1), (1, 2), (0, 1), (0, 2), (1, 0), (0, 0)] {
            let args = GenerateArgs {
                selector,
                mtype,
                ..gen_args(&pem)
            };
            assert_eq!(
                generated_hex(&args),
                openssl_cert(&pem, selector, mtype),
                "{alg:?} 3 {selector} {mtype}"
            );
        }
    }
}

#[test]
fn generate_prints_a_zone_file_line() {
    let scratch = Scratch::new("generate-line");
    let pki = Pki::new();
    let pem = leaf_pem(&scratch, "leaf.pem", &pki.leaf);
    let want = openssl_cert(&pem, 1, 1);
    let g = generate(&gen_args(&pem)).unwrap();
    assert_eq!(
        g.line(),
        format!("_25._tcp.mx1.example.net. 3600 IN TLSA 3 1 1 {want}")
    );
    let out = Command::new(BIN)
        .args([
            "tlsa",
            "generate",
            "--name",
            "mx1.example.net.",
            "--port",
            "587",
        ])
        .args(["--ttl", "300", "--cert"])
        .arg(&pem)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("_587._tcp.mx1.example.net. 300 IN TLSA 3 1 1 {want}\n")
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("for the server certificate: no subject name, DNS names mx1.example.net"),
        "{err}"
    );
}

#[test]
fn generate_for_an_issuer_picks_the_top_of_the_chain() {
    let scratch = Scratch::new("generate-issuer");
    let pki = Pki::new();
    let leaf = leaf_pem(&scratch, "leaf.pem", &pki.leaf);
    let root = leaf_pem(&scratch, "root.pem", &pki.root);
    let intermediate = leaf_pem(&scratch, "intermediate.pem", &pki.intermediate);
    // The chain file in either order; the path is followed by names.
    for (i, chain) in [
        format!("{}{}", pki.intermediate.cert.pem(), pki.root.cert.pem()),
        format!("{}{}", pki.root.cert.pem(), pki.intermediate.cert.pem()),
    ]
    .iter()
    .enumerate()
    {
        let chain = scratch.write(&format!("chain{i}.pem"), chain);
        for (selector, mtype) in [(1, 1), (0, 1), (1, 2)] {
            let args = GenerateArgs {
                usage: 2,
                selector,
                mtype,
                chain: Some(chain.clone()),
                ..gen_args(&leaf)
            };
            let g = generate(&args).unwrap();
            assert_eq!(
                hex(&g.record.data),
                openssl_cert(&root, selector, mtype),
                "2 {selector} {mtype} of the top"
            );
            assert!(
                g.notes.iter().any(|n| n.contains(
                    "for the certificate at depth 2, the top of the chain: subject CN=Example Test Root"
                )),
                "{:?}",
                g.notes
            );
            let args = GenerateArgs {
                depth: Some(1),
                ..args
            };
            assert_eq!(
                generated_hex(&args),
                openssl_cert(&intermediate, selector, mtype),
                "2 {selector} {mtype} at depth 1"
            );
        }
    }
    // A fullchain file alone works too, and the binary names the issuer.
    let fullchain = scratch.write(
        "fullchain.pem",
        format!(
            "{}{}{}",
            pki.leaf.cert.pem(),
            pki.intermediate.cert.pem(),
            pki.root.cert.pem()
        ),
    );
    let out = Command::new(BIN)
        .args([
            "tlsa",
            "generate",
            "--usage",
            "2",
            "--name",
            "mx1.example.net",
        ])
        .arg("--cert")
        .arg(&fullchain)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "_25._tcp.mx1.example.net. 3600 IN TLSA 2 1 1 {}\n",
            openssl_cert(&root, 1, 1)
        )
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("subject CN=Example Test Root"));
}

#[test]
fn generate_refuses_what_cannot_be_meant() {
    let scratch = Scratch::new("generate-refuses");
    let pki = Pki::new();
    let leaf = leaf_pem(&scratch, "leaf.pem", &pki.leaf);
    let key = scratch.write("key.pem", pki.leaf.key.serialize_pem());
    let cases = [
        (
            GenerateArgs {
                usage: 2,
                ..gen_args(&leaf)
            },
            "none is given",
        ),
        (
            GenerateArgs {
                usage: 2,
                depth: Some(0),
                chain: Some(leaf_pem(&scratch, "int.pem", &pki.intermediate)),
                ..gen_args(&leaf)
            },
            "depth 0 is the server certificate",
        ),
        (
            GenerateArgs {
                usage: 2,
                depth: Some(5),
                chain: Some(leaf_pem(&scratch, "int.pem", &pki.intermediate)),
                ..gen_args(&leaf)
            },
            "no certificate at depth 5",
        ),
        (
            GenerateArgs {
                usage: 2,
                chain: Some(leaf_pem(&scratch, "root.pem", &pki.root)),
                ..gen_args(&leaf)
            },
            "none of the certificates given issued it",
        ),
        (
            GenerateArgs {
                selector: 0,
                ..gen_args(&key)
            },
            "use selector 1",
        ),
    ];
    for (args, want) in cases {
        let err = generate(&args).unwrap_err().to_string();
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let out = Command::new(BIN)
        .args(["tlsa", "generate", "--selector", "0", "--name", "mx"])
        .arg("--key")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("use selector 1"));
}

/// The "next" key of a rollover, before its certificate exists: every key
/// file format gives the digest OpenSSL computes from the certificate.
#[test]
fn generate_from_key_files_matches_the_certificate() {
    let scratch = Scratch::new("generate-keys");
    let ec = Pki::new();
    let rsa = Pki::with(Spec {
        leaf_alg: Alg::Rsa2048,
        ..Spec::default()
    });
    // Ed25519 by OpenSSL: its PKCS#8 (v1) holds only the private seed, so
    // the public key must be derived. (OpenSSL 3.0 cannot read the v2
    // PKCS#8 that ring writes.)
    let ed_key = scratch.0.join("ed25519.key");
    let ed_cert = scratch.0.join("ed25519.cert");
    sh(&format!(
        "openssl genpkey -algorithm ed25519 -out {k} && openssl req -x509 -key {k} -subj /CN=mx1.example.net -days 30 -out {c}",
        k = ed_key.display(),
        c = ed_cert.display()
    ));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let keys = [
        ("ecdsa", ec.leaf.key.serialize_pem(), ec.leaf.cert.pem()),
        ("rsa", rsa.leaf.key.serialize_pem(), rsa.leaf.cert.pem()),
        ("ed25519", read(&ed_key), read(&ed_cert)),
    ];
    for (alg, key_pem, cert_pem) in keys {
        let cert = scratch.write(&format!("{alg}.crt"), cert_pem);
        let want = openssl_cert(&cert, 1, 1);
        let pkcs8 = scratch.write(&format!("{alg}.pkcs8.pem"), key_pem);
        assert_eq!(openssl_key(&pkcs8, false), want, "{alg}: openssl itself");
        // OpenSSL's conversions: PKCS#1 / SEC1 ("traditional") and the
        // public key alone.
        let mut files = vec![(pkcs8.clone(), "PRIVATE KEY")];
        if alg != "ed25519" {
            let traditional = scratch.0.join(format!("{alg}.trad.pem"));
            sh(&format!(
                "openssl pkey -in {} -traditional -out {}",
                pkcs8.display(),
                traditional.display()
            ));
            let label = if alg == "rsa" {
                "RSA PRIVATE KEY"
            } else {
                "EC PRIVATE KEY"
            };
            files.push((traditional, label));
        }
        let public = scratch.0.join(format!("{alg}.pub.pem"));
        sh(&format!(
            "openssl pkey -in {} -pubout -out {}",
            pkcs8.display(),
            public.display()
        ));
        files.push((public, "PUBLIC KEY"));
        for (file, label) in files {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                text.starts_with(&format!("-----BEGIN {label}-----")),
                "{alg}: {text}"
            );
            let args = GenerateArgs {
                cert: None,
                key: Some(file.clone()),
                ..gen_args(&file)
            };
            assert_eq!(generated_hex(&args), want, "{alg} from a {label} file");
            let args = GenerateArgs { mtype: 2, ..args };
            assert_eq!(
                generated_hex(&args),
                openssl_cert(&cert, 1, 2),
                "{alg} 3 1 2 from a {label} file"
            );
        }
    }
}

// ---------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------

/// The chain of `shape` as a PEM file (leaf first).
fn chain_file(scratch: &Scratch, pki: &Pki, shape: Shape, tag: &str) -> PathBuf {
    let rest: Vec<&Issued> = match shape {
        Shape::LeafOnly => vec![],
        Shape::LeafIntermediate => vec![&pki.intermediate],
        Shape::LeafIntermediateRoot => vec![&pki.intermediate, &pki.root],
        Shape::Unordered => vec![&pki.root, &pki.intermediate],
    };
    let mut pem = pki.leaf.cert.pem();
    for issued in rest {
        pem.push_str(&issued.cert.pem());
    }
    scratch.write(&format!("{tag}-{shape:?}.pem"), pem)
}

fn verify_args(chain: &Path, records: &[Tlsa]) -> VerifyArgs {
    VerifyArgs {
        chain: chain.to_owned(),
        name: "mx1.example.net".into(),
        port: 25,
        tlsa: records.iter().map(|r| r.to_string()).collect(),
        dns: false,
        config: None,
        nexthop: Some("example.net".into()),
    }
}

/// `tlsa verify` and the relay's verifier on the same chain and records.
fn agree(scratch: &Scratch, pki: &Pki, shape: Shape, records: &[Tlsa], tag: &str) -> bool {
    let file = chain_file(scratch, pki, shape, tag);
    let got = verify(&verify_args(&file, records))
        .unwrap_or_else(|e| panic!("{tag}: {e}"))
        .result;
    let (leaf, rest) = pki.chain(shape);
    let want = verify_chain(records, 25, &names(), &leaf, &rest, UnixTime::now());
    assert_eq!(got, want, "{tag}, chain {shape:?}, records {records:?}");
    got.is_ok()
}

const SHAPES: [Shape; 4] = [
    Shape::LeafOnly,
    Shape::LeafIntermediate,
    Shape::LeafIntermediateRoot,
    Shape::Unordered,
];

#[test]
fn verify_agrees_with_the_verifier_on_the_matrix() {
    let scratch = Scratch::new("verify-matrix");
    let pki = Pki::new();
    let (mut cases, mut matches) = (0, 0);
    for shape in SHAPES {
        for which in [Which::Leaf, Which::Intermediate, Which::Root] {
            for usage in [2u8, 3] {
                for selector in [0u8, 1] {
                    for mtype in [0u8, 1, 2] {
                        let record = pki.tlsa(which, usage, selector, mtype);
                        let tag = format!("{usage}{selector}{mtype}-{which:?}");
                        matches += usize::from(agree(&scratch, &pki, shape, &[record], &tag));
                        cases += 1;
                    }
                }
            }
        }
    }
    assert_eq!(cases, 144);
    // As many matches as dane_matrix's TABLE has (a guard against a
    // comparison that agrees only because everything fails).
    assert_eq!(matches, 58);
}

#[test]
fn verify_agrees_with_the_verifier_on_named_cases() {
    let scratch = Scratch::new("verify-named");
    let corrupt = dane_support::corrupt;
    let pki = Pki::new();
    let ee = pki.tlsa(Which::Leaf, 3, 1, 1);
    let ta = pki.tlsa(Which::Root, 2, 0, 1);
    let cases: Vec<(&str, Pki, Vec<Tlsa>)> = vec![
        ("wrong digest", Pki::new(), vec![corrupt(ee.clone())]),
        (
            "unusable only",
            Pki::new(),
            vec![Tlsa {
                usage: 1,
                ..ee.clone()
            }],
        ),
        (
            "wrong name under TA",
            Pki::with(Spec {
                leaf_sans: vec!["mx1.example.org".into()],
                ..Spec::default()
            }),
            vec![],
        ),
        (
            "next-hop name under TA",
            Pki::with(Spec {
                leaf_sans: vec!["example.net".into()],
                ..Spec::default()
            }),
            vec![],
        ),
        (
            "expired leaf",
            Pki::with(Spec {
                leaf_expired: true,
                ..Spec::default()
            }),
            vec![],
        ),
        (
            "non-CA intermediate",
            Pki::with(Spec {
                intermediate_is_ca: false,
                ..Spec::default()
            }),
            vec![],
        ),
        (
            "RSA leaf",
            Pki::with(Spec {
                leaf_alg: Alg::Rsa2048,
                ..Spec::default()
            }),
            vec![],
        ),
    ];
    for (tag, p, records) in &cases {
        // Records of the case's own PKI unless given: EE and TA each, and
        // both with a wrong SHA-256 next to a right SHA-512 (agility).
        let sets: Vec<Vec<Tlsa>> = if records.is_empty() {
            vec![
                vec![p.tlsa(Which::Leaf, 3, 1, 1)],
                vec![p.tlsa(Which::Root, 2, 0, 1)],
                vec![p.tlsa(Which::Intermediate, 2, 1, 2)],
                vec![
                    corrupt(p.tlsa(Which::Leaf, 3, 1, 1)),
                    p.tlsa(Which::Leaf, 3, 1, 2),
                ],
                vec![
                    p.tlsa(Which::Leaf, 3, 1, 1),
                    corrupt(p.tlsa(Which::Leaf, 3, 1, 2)),
                ],
            ]
        } else {
            vec![records.clone()]
        };
        for (i, set) in sets.iter().enumerate() {
            for shape in SHAPES {
                agree(
                    &scratch,
                    p,
                    shape,
                    set,
                    &format!("{}-{i}", tag.replace(' ', "-")),
                );
            }
        }
    }
    // The records of one PKI against another's chain.
    let other = Pki::new();
    for shape in SHAPES {
        agree(
            &scratch,
            &other,
            shape,
            &[ee.clone(), ta.clone()],
            "other-pki",
        );
    }
}

#[test]
fn verify_command_output_and_exit_status() {
    let scratch = Scratch::new("verify-binary");
    let pki = Pki::new();
    let chain = chain_file(&scratch, &pki, Shape::LeafIntermediateRoot, "bin");
    let run = |records: &[String], extra: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["tlsa", "verify", "--name", "mx1.example.net", "--chain"])
            .arg(&chain)
            .args(extra);
        for r in records {
            cmd.arg("--tlsa").arg(r);
        }
        cmd.output().unwrap()
    };
    let ee = pki.tlsa(Which::Leaf, 3, 1, 1);
    let out = run(&[ee.to_string()], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("match: DANE-EE 3 1 1 {}… at depth 0\n", hex(&ee.data[..4]))
    );
    // A zone-file line, as `generate` prints it, is accepted.
    let line = format!("_25._tcp.mx1.example.net. 3600 IN TLSA {ee}");
    assert_eq!(run(&[line], &[]).status.code(), Some(0));

    let ta = pki.tlsa(Which::Root, 2, 1, 1);
    let out = run(&[ta.to_string()], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("match: DANE-TA 2 1 1 {}… at depth 2\n", hex(&ta.data[..4]))
    );

    let wrong = dane_support::corrupt(ee.clone());
    let unusable = Tlsa {
        usage: 1,
        ..ee.clone()
    };
    let out = run(&[wrong.to_string(), unusable.to_string()], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fail: no TLSA record of _25._tcp.mx1.example.net matches the certificate chain\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is unusable for SMTP: PKIX usage"),
        "{out:?}"
    );

    let out = run(&["3 1 1 xyz".to_owned()], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
