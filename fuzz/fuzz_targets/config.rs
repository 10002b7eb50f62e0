//! The configuration parser on arbitrary text: it must never panic, and a
//! configuration it accepts prints (as `danegate config check` does) to
//! text that parses back to the same configuration.
#![no_main]

use danegate::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|buf: &[u8]| {
    let Ok(text) = std::str::from_utf8(buf) else {
        return;
    };
    let Ok(config) = Config::parse(text, "fuzz") else {
        return;
    };
    let printed = toml::to_string_pretty(&config).expect("a parsed config prints");
    let again = Config::parse(&printed, "printed").expect("printed config parses");
    assert_eq!(again, config);
});
