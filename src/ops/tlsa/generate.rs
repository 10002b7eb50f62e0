//! `tlsa generate`: the zone-file line for a certificate or key, DANE-EE
//! for the server certificate, DANE-TA for an issuer from its chain (by
//! default the top), with notes on standard error saying which
//! certificate was used.

use super::material::{issuance_path, read_material, Designated, Material};
use super::{tlsa_name, GenerateArgs, TlsaError};
use crate::dns::Tlsa;
use crate::ops::certs::{describe_cert, is_ca};
use crate::tls::CertificateDer;

/// A record ready to publish.
#[derive(Debug, Clone)]
pub struct Generated {
    /// `_25._tcp.mx.example.net.`
    pub owner: String,
    pub ttl: u32,
    pub record: Tlsa,
    /// Which certificate or key the record designates, and warnings: for
    /// standard error.
    pub notes: Vec<String>,
}

impl Generated {
    /// `_25._tcp.mx.example.net. 3600 IN TLSA 3 1 1 <hex>`
    pub fn line(&self) -> String {
        format!("{} {} IN TLSA {}", self.owner, self.ttl, self.record)
    }
}

pub fn generate(args: &GenerateArgs) -> Result<Generated, TlsaError> {
    let owner = format!("{}.", tlsa_name(&args.name, args.port)?);
    let path = args
        .cert
        .as_deref()
        .or(args.key.as_deref())
        .ok_or_else(|| TlsaError::Usage("give --cert FILE or --key FILE".to_owned()))?;
    let material = read_material(path)?;
    let mut notes = Vec::new();
    let designated = match material {
        Material::Certificates(mut certs) => {
            if let Some(chain) = &args.chain {
                match read_material(chain)? {
                    Material::Certificates(more) => certs.extend(more),
                    Material::Key { .. } => {
                        return Err(TlsaError::File {
                            path: chain.clone(),
                            why: "a key, not certificates".to_owned(),
                        })
                    }
                }
            }
            pick_certificate(args, certs, &mut notes)?
        }
        key @ Material::Key { .. } => {
            if args.depth.is_some() || args.chain.is_some() {
                return Err(TlsaError::Usage(format!(
                    "{} holds a key, not certificates: --chain and --depth pick a certificate",
                    path.display()
                )));
            }
            let d = Designated::from_material(key, path)?;
            notes.push(format!(
                "TLSA {} {} {} for {}",
                args.usage, args.selector, args.mtype, d.about
            ));
            d
        }
    };
    let record = designated.record(args.usage, args.selector, args.mtype)?;
    Ok(Generated {
        owner,
        ttl: args.ttl,
        record,
        notes,
    })
}

/// The certificate a record designates: the server certificate for
/// DANE-EE, an issuer from the chain for DANE-TA.
fn pick_certificate(
    args: &GenerateArgs,
    certs: Vec<CertificateDer<'static>>,
    notes: &mut Vec<String>,
) -> Result<Designated, TlsaError> {
    let (path, unused) = issuance_path(certs);
    for cert in &unused {
        notes.push(format!(
            "note: ignoring a certificate that is not in the chain of the server certificate: {}",
            describe_cert(cert)
        ));
    }
    let what = format!("TLSA {} {} {}", args.usage, args.selector, args.mtype);
    let depth = match args.usage {
        3 => {
            if args.depth.is_some_and(|d| d != 0) {
                return Err(TlsaError::Usage(
                    "--depth picks an issuer for --usage 2; a DANE-EE record (usage 3) designates the server certificate".to_owned(),
                ));
            }
            0
        }
        _ => ta_depth(args.depth, &path, !unused.is_empty())?,
    };
    let cert = path[depth].clone();
    let about = describe_cert(&cert);
    let place = match (args.usage, depth) {
        (3, _) => "the server certificate".to_owned(),
        (_, 0) => {
            notes.push("note: a DANE-TA record must designate an issuer of the server certificate, never the server certificate itself (that is usage 3)".to_owned());
            "the CA certificate given".to_owned()
        }
        (_, d) if d + 1 == path.len() => {
            format!("the certificate at depth {d}, the top of the chain")
        }
        (_, d) => format!("the certificate at depth {d} of the chain"),
    };
    notes.push(format!("{what} for {place}: {about}"));
    Designated::certificate(cert, about).map_err(TlsaError::Usage)
}

/// Which certificate of the issuance path a DANE-TA record designates.
fn ta_depth(
    depth: Option<usize>,
    path: &[CertificateDer<'static>],
    others_given: bool,
) -> Result<usize, TlsaError> {
    if path.len() == 1 {
        // A CA certificate on its own: the operator named the anchor.
        if is_ca(&path[0]) && depth.unwrap_or(0) == 0 && !others_given {
            return Ok(0);
        }
        let why = if others_given {
            "none of the certificates given issued it (by name): give the chain from the server certificate up"
        } else {
            "none is given: add the chain (in the same file or with --chain FILE)"
        };
        return Err(TlsaError::Usage(format!(
            "a DANE-TA record (usage 2) designates an issuer of the server certificate, and {why}"
        )));
    }
    let depth = depth.unwrap_or(path.len() - 1);
    if depth == 0 {
        return Err(TlsaError::Usage(
            "depth 0 is the server certificate itself; a DANE-TA record designates an issuer (depth 1 or more), and a record for the server certificate is usage 3".to_owned(),
        ));
    }
    if depth >= path.len() {
        let list: Vec<String> = path
            .iter()
            .enumerate()
            .map(|(i, c)| format!("  depth {i}: {}", describe_cert(c)))
            .collect();
        return Err(TlsaError::Usage(format!(
            "no certificate at depth {depth}; the chain is:\n{}",
            list.join("\n")
        )));
    }
    Ok(depth)
}
