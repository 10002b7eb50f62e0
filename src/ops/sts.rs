//! `danegate sts show | refresh | forget DOMAIN`: the MTA-STS policy
//! cache as an operator manages it.
//!
//! The running danegate holds the state database open (redb allows one
//! process), so the command asks it through the control socket in
//! `[state] dir`; when nothing answers there, the command opens the
//! database itself. Either way the same [`execute`] does the work.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use serde::Serialize;
use tracing::error;

use crate::config::Config;
use crate::state::Store;
use crate::sts::cache::Entry;
use crate::sts::discover::{time_text, Discovery, Txt};
use crate::sts::Sts;

#[derive(Subcommand, Debug, Clone)]
pub enum StsCmd {
    /// Show DOMAIN's `_mta-sts` TXT record and its cached policy (mode,
    /// patterns, age, expiry, the last failed refresh, the text).
    Show(Args),
    /// Fetch DOMAIN's policy now and cache it (exit 1 when that fails).
    Refresh(Args),
    /// Remove DOMAIN's cached policy (the next delivery discovers it
    /// afresh: trust on first use again).
    Forget(Args),
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    pub domain: String,
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// One request, as it travels over the control socket:
/// `show example.com json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub verb: Verb,
    pub domain: String,
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Show,
    Refresh,
    Forget,
}

impl Request {
    pub fn line(&self) -> String {
        let verb = match self.verb {
            Verb::Show => "show",
            Verb::Refresh => "refresh",
            Verb::Forget => "forget",
        };
        let json = if self.json { " json" } else { "" };
        format!("sts {verb} {}{json}\n", self.domain)
    }

    pub fn parse(line: &str) -> Option<Request> {
        let mut w = line.split_ascii_whitespace();
        if w.next()? != "sts" {
            return None;
        }
        let verb = match w.next()? {
            "show" => Verb::Show,
            "refresh" => Verb::Refresh,
            "forget" => Verb::Forget,
            _ => return None,
        };
        let domain = w.next()?.trim_end_matches('.').to_ascii_lowercase();
        if !crate::config::is_dns_name(&domain) {
            return None;
        }
        let json = match w.next() {
            None => false,
            Some("json") => true,
            Some(_) => return None,
        };
        w.next().is_none().then_some(Request { verb, domain, json })
    }
}

/// The command line's entry.
pub fn run(cmd: StsCmd) -> ExitCode {
    let (verb, args) = match cmd {
        StsCmd::Show(a) => (Verb::Show, a),
        StsCmd::Refresh(a) => (Verb::Refresh, a),
        StsCmd::Forget(a) => (Verb::Forget, a),
    };
    let config = match crate::cli::loaded(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let domain = args.domain.trim_end_matches('.').to_ascii_lowercase();
    let line = format!("sts show {domain}");
    let Some(mut request) = Request::parse(&line) else {
        error!("{:?} is not a domain name", args.domain);
        return ExitCode::from(2);
    };
    request.verb = verb;
    request.json = args.json;
    let socket = crate::ops::control::socket_path(&config.state.dir);
    if let Some(answer) = crate::ops::control::ask(&socket, &request.line()) {
        return match answer {
            Ok((code, text)) => {
                print!("{text}");
                ExitCode::from(code)
            }
            Err(e) => {
                error!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    locally(config, request)
}

/// No danegate answers on the control socket: open the database here.
fn locally(config: Config, request: Request) -> ExitCode {
    let store = match Store::open(&config.state.dir) {
        Ok(s) => s,
        Err(e) => {
            error!("{e} (is a danegate running without its control socket?)");
            return ExitCode::FAILURE;
        }
    };
    let Some(rt) = super::runtime() else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let built = match crate::dns::build(&config.dns).await {
            Ok(b) => b,
            Err(e) => {
                error!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let sts = match crate::sts::from_config(&config, built.resolver, store) {
            Ok(s) => s,
            Err(e) => {
                error!("configuration error: {e}");
                return ExitCode::from(2);
            }
        };
        let (code, text) = execute(&sts, &request).await;
        print!("{text}");
        ExitCode::from(code)
    })
}

/// Carries out `request` on `sts`: the exit status and the output.
pub async fn execute(sts: &Arc<Sts>, request: &Request) -> (u8, String) {
    let domain = request.domain.as_str();
    match request.verb {
        Verb::Show => {
            let txt = sts.txt(domain).await;
            let view = View::new(sts, domain, &txt, None);
            (0, view.render(request.json))
        }
        Verb::Refresh => {
            let found = sts.refresh(domain).await;
            let ok = found.problem.is_none() && matches!(found.txt, Txt::Record(_));
            let view = View::new(sts, domain, &found.txt, Some(&found));
            (if ok { 0 } else { 1 }, view.render(request.json))
        }
        Verb::Forget => match sts.forget(domain) {
            Ok(true) => (0, format!("forgot the cached MTA-STS policy of {domain}\n")),
            Ok(false) => (1, format!("no cached MTA-STS policy for {domain}\n")),
            Err(e) => (1, format!("cannot remove the policy of {domain}: {e}\n")),
        },
    }
}

/// What `show` and `refresh` print.
#[derive(Serialize)]
struct View {
    domain: String,
    enabled: bool,
    cache: String,
    txt: TxtView,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_error: Option<RefreshError>,
    cached: Option<CachedView>,
}

#[derive(Serialize)]
struct TxtView {
    name: String,
    /// "record", "none", "invalid", "failed".
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct RefreshError {
    /// The TLS-RPT result type.
    kind: &'static str,
    error: String,
}

#[derive(Serialize)]
struct CachedView {
    id: String,
    mode: String,
    max_age: u64,
    mx: Vec<String>,
    fetched_at: String,
    age_seconds: u64,
    expires_at: String,
    expired: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_refresh_failure: Option<String>,
    text: String,
}

impl View {
    fn new(sts: &Sts, domain: &str, txt: &Txt, found: Option<&Discovery>) -> View {
        let now = sts.now();
        let txt = TxtView::new(domain, txt);
        let cached = sts
            .cache()
            .get(domain)
            .ok()
            .flatten()
            .map(|e| CachedView::new(&e, now));
        View {
            domain: domain.to_owned(),
            enabled: sts.enabled(),
            cache: sts.cache().location(),
            txt,
            refresh_error: found
                .and_then(|f| f.problem.as_ref())
                .map(|p| RefreshError {
                    kind: p.kind().result_type(),
                    error: p.to_string(),
                }),
            cached,
        }
    }

    fn render(&self, json: bool) -> String {
        if json {
            return serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        }
        let mut out = format!("MTA-STS for {}", self.domain);
        if !self.enabled {
            out.push_str(" (disabled: [mta_sts] enabled = false)");
        }
        out.push('\n');
        out.push_str(&format!("  TXT {}: {}\n", self.txt.name, self.txt.text()));
        if let Some(e) = &self.refresh_error {
            out.push_str(&format!("  fetch failed ({}): {}\n", e.kind, e.error));
        }
        match &self.cached {
            None => out.push_str(&format!("  cached policy: none ({})\n", self.cache)),
            Some(c) => out.push_str(&c.text_form(&self.cache)),
        }
        out
    }
}

impl TxtView {
    fn new(domain: &str, txt: &Txt) -> TxtView {
        let name = format!("_mta-sts.{domain}");
        let (status, id, error) = match txt {
            Txt::Record(r) => ("record", Some(r.id.clone()), None),
            Txt::Absent => ("none", None, None),
            Txt::Invalid(e) => ("invalid", None, Some(e.to_string())),
            Txt::Failed(e) => ("failed", None, Some(e.to_string())),
        };
        TxtView {
            name,
            status,
            id,
            error,
        }
    }

    fn text(&self) -> String {
        match (&self.id, &self.error) {
            (Some(id), _) => format!("v=STSv1; id={id}"),
            (None, Some(e)) => format!("{}: {e}", self.status),
            (None, None) => "none (no policy announced)".into(),
        }
    }
}

impl CachedView {
    fn new(e: &Entry, now: u64) -> CachedView {
        let policy = e.policy();
        CachedView {
            id: e.id.clone(),
            mode: policy
                .as_ref()
                .map(|p| p.mode.to_string())
                .unwrap_or_else(|err| format!("unreadable ({err})")),
            max_age: e.max_age,
            mx: policy
                .map(|p| p.mx.iter().map(|m| m.to_string()).collect())
                .unwrap_or_default(),
            fetched_at: time_text(e.fetched_at),
            age_seconds: now.saturating_sub(e.fetched_at),
            expires_at: time_text(e.expires_at()),
            expired: e.is_expired(now),
            last_refresh_failure: e
                .refresh_failure
                .as_ref()
                .map(|(at, why)| format!("{}: {why}", time_text(*at))),
            text: e.text.clone(),
        }
    }

    fn text_form(&self, location: &str) -> String {
        let mut out = format!(
            "  cached policy ({location}): id {}, mode {}, max_age {}, fetched {} (age {} s), {} {}\n",
            self.id,
            self.mode,
            self.max_age,
            self.fetched_at,
            self.age_seconds,
            if self.expired { "expired" } else { "expires" },
            self.expires_at
        );
        for mx in &self.mx {
            out.push_str(&format!("    mx: {mx}\n"));
        }
        if let Some(f) = &self.last_refresh_failure {
            out.push_str(&format!("    last failed refresh: {f}\n"));
        }
        out.push_str("    policy text:\n");
        for line in self.text.lines() {
            out.push_str(&format!("      {}\n", line.escape_debug()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_travel_as_one_line() {
        let r = Request {
            verb: Verb::Refresh,
            domain: "example.com".into(),
            json: true,
        };
        assert_eq!(r.line(), "sts refresh example.com json\n");
        assert_eq!(Request::parse(&r.line()), Some(r));
        assert_eq!(
            Request::parse("sts show Example.COM.\n").map(|r| (r.verb, r.domain, r.json)),
            Some((Verb::Show, "example.com".into(), false))
        );
        for bad in [
            "",
            "sts",
            "sts show",
            "sts drop example.com",
            "sts show example.com xml",
            "sts show example.com json extra",
            "sts show exa mple.com",
            "sts show ../../etc",
            "tlsa show example.com",
        ] {
            assert_eq!(Request::parse(bad), None, "{bad:?}");
        }
    }
}
