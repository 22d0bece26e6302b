//! [`safe_name`]: a name a peer offered, made safe to create under the download
//! directory on any platform.

/// Longest component kept, in bytes: below the 255 of common file systems, leaving
/// room for a ` (12)` added to find a free name.
const MAX_COMPONENT: usize = 200;
/// Most components kept: a peer cannot make us build an absurdly deep tree.
const MAX_COMPONENTS: usize = 16;
/// What a name with nothing usable left becomes.
const FALLBACK: &str = "file";

/// The relative path `offered` by a peer, made safe to create under the download
/// directory, `/`-separated. Whatever the input, the result is relative, has no `..`
/// (nor any component starting with `.`), no NUL, and names a file rather than a
/// device on Windows:
///
/// - split on `/` and `\`; empty, `.` and `..` components are dropped, and so is a
///   drive prefix (`C:`) at the start;
/// - control characters, the characters Windows forbids (`<>:"|?*`) and the Unicode
///   bidirectional overrides (which can disguise an extension, `gpj.exe` shown as
///   `exe.jpg`) become `_`;
/// - a component starting with `.` gets a `_` in front (no hidden files, and the
///   partial files of [`Downloads`](crate::Downloads), which start with `.`, cannot be
///   named);
/// - Windows' reserved device names (`CON`, `NUL`, `COM1`..., in any case, also with an
///   extension: `con.txt`) get a `_` in front;
/// - each component is cut to at most 200 bytes at a character boundary, keeping its
///   extension when it is short; a trailing `.` or space (which Windows strips) becomes
///   `_`;
/// - more than 16 components: the first 15 directories and the file's own name are
///   kept;
/// - nothing left: `file`.
pub fn safe_name(offered: &str) -> String {
    let mut components: Vec<String> = Vec::new();
    for (i, raw) in offered.split(['/', '\\']).enumerate() {
        let raw = if i == 0 { strip_drive(raw) } else { raw };
        if raw.is_empty() || raw == "." || raw == ".." {
            continue;
        }
        components.push(safe_component(raw));
    }
    if components.len() > MAX_COMPONENTS {
        let last = components.split_off(MAX_COMPONENTS - 1).pop();
        components.extend(last);
    }
    if components.is_empty() {
        return FALLBACK.to_owned();
    }
    components.join("/")
}

/// `rest` for `X:rest`, where `X` is an ASCII letter: a Windows drive, absolute (`C:\`)
/// or relative to that drive's current directory (`C:foo`).
fn strip_drive(first: &str) -> &str {
    let bytes = first.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        &first[2..]
    } else {
        first
    }
}

/// One non-empty component other than `.` and `..`, made safe.
fn safe_component(raw: &str) -> String {
    let mut name: String = raw
        .chars()
        .map(|c| if forbidden(c) { '_' } else { c })
        .collect();
    if name.starts_with('.') || reserved(&name) {
        name.insert(0, '_');
    }
    let mut name = truncate(name);
    if name.ends_with(['.', ' ']) {
        name.pop();
        name.push('_');
    }
    name
}

/// Characters no file name gets: control characters (NUL among them), those Windows
/// forbids, and the bidirectional controls that make a name display as another.
fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whether Windows would take `name` for a device: its part before the first `.`,
/// without trailing spaces, is one of the reserved names, in any case.
fn reserved(name: &str) -> bool {
    let stem = name
        .split('.')
        .next()
        .unwrap_or(name)
        .trim_end_matches(' ')
        .to_ascii_uppercase();
    match stem.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => {
            let numbered = stem
                .strip_prefix("COM")
                .or_else(|| stem.strip_prefix("LPT"));
            numbered.is_some_and(|n| {
                let mut digits = n.chars();
                matches!(
                    (digits.next(), digits.next()),
                    (Some('1'..='9' | '¹' | '²' | '³'), None)
                )
            })
        }
    }
}

/// `name` cut to at most [`MAX_COMPONENT`] bytes at a character boundary, keeping the
/// extension (from the last `.`) when it is at most 20 bytes.
fn truncate(name: String) -> String {
    if name.len() <= MAX_COMPONENT {
        return name;
    }
    let extension = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= 20 => &name[dot..],
        _ => "",
    };
    let mut cut = MAX_COMPONENT - extension.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{extension}", &name[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What every result must be, whatever went in.
    fn assert_safe(offered: &str) {
        let name = safe_name(offered);
        assert!(!name.is_empty(), "{offered:?}");
        assert!(
            !name.contains('\0') && !name.contains('\\'),
            "{offered:?} -> {name:?}"
        );
        assert!(!name.starts_with('/'), "{offered:?} -> {name:?}");
        assert!(
            !std::path::Path::new(&name).is_absolute(),
            "{offered:?} -> {name:?}"
        );
        let components: Vec<&str> = name.split('/').collect();
        assert!(
            components.len() <= MAX_COMPONENTS,
            "{offered:?} -> {name:?}"
        );
        for component in components {
            assert!(!component.is_empty(), "{offered:?} -> {name:?}");
            assert!(!component.starts_with('.'), "{offered:?} -> {name:?}");
            assert!(component.len() <= MAX_COMPONENT, "{offered:?} -> {name:?}");
            assert!(!component.chars().any(forbidden), "{offered:?} -> {name:?}");
            assert!(!reserved(component), "{offered:?} -> {name:?}");
            assert!(!component.ends_with(['.', ' ']), "{offered:?} -> {name:?}");
        }
        // Normalising a safe name changes nothing.
        assert_eq!(safe_name(&name), name, "{offered:?}");
    }

    #[test]
    fn traversal_is_dropped() {
        assert_eq!(safe_name("../../etc/passwd"), "etc/passwd");
        assert_eq!(safe_name("a/../../b"), "a/b");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name("."), "file");
        assert_eq!(safe_name("./a/./b"), "a/b");
        assert_eq!(safe_name("..\\..\\x"), "x");
        assert_eq!(safe_name("..."), "_.._");
    }

    #[test]
    fn absolute_paths_become_relative() {
        assert_eq!(safe_name("/etc/passwd"), "etc/passwd");
        assert_eq!(safe_name("//server/share/x"), "server/share/x");
        assert_eq!(safe_name("C:\\Windows\\x"), "Windows/x");
        assert_eq!(safe_name("c:/x"), "x");
        assert_eq!(safe_name("C:x.txt"), "x.txt");
        assert_eq!(safe_name("C:"), "file");
        assert_eq!(safe_name("\\\\?\\C:\\x"), "_/C_/x");
        // Only at the start is `X:` a drive.
        assert_eq!(safe_name("dir/C:x"), "dir/C_x");
    }

    #[test]
    fn hidden_files_get_an_underscore() {
        assert_eq!(safe_name(".bashrc"), "_.bashrc");
        assert_eq!(
            safe_name("home/.ssh/authorized_keys"),
            "home/_.ssh/authorized_keys"
        );
        assert_eq!(
            safe_name(".udpchat-0011223344556677-5.part"),
            "_.udpchat-0011223344556677-5.part"
        );
    }

    #[test]
    fn windows_device_names_get_an_underscore() {
        for name in [
            "CON",
            "con",
            "CON.txt",
            "nul.tar.gz",
            "Aux",
            "prn",
            "COM1",
            "com9.log",
            "LPT3",
            "lpt1.x",
            "CON .txt",
        ] {
            assert_eq!(safe_name(name), format!("_{name}"), "{name}");
        }
        for name in [
            "CONSOLE",
            "COM",
            "COM10",
            "LPT0",
            "com1x",
            "nullify.txt",
            "icon.png",
        ] {
            assert_eq!(safe_name(name), name, "{name}");
        }
        assert_eq!(safe_name("dir/nul"), "dir/_nul");
    }

    #[test]
    fn forbidden_characters_become_underscores() {
        assert_eq!(safe_name("a<b>c:d\"e|f?g*h.txt"), "a_b_c_d_e_f_g_h.txt");
        assert_eq!(
            safe_name("tab\there\nnew\0nul\x7fdel\u{85}nel"),
            "tab_here_new_nul_del_nel"
        );
        assert_eq!(safe_name("photo\u{202e}gpj.exe"), "photo_gpj.exe");
        assert_eq!(safe_name("trailing."), "trailing_");
        assert_eq!(safe_name("trailing "), "trailing_");
        assert_eq!(safe_name(" "), "_");
    }

    #[test]
    fn unicode_is_kept() {
        assert_eq!(
            safe_name("фото/日本語 ファイル.txt"),
            "фото/日本語 ファイル.txt"
        );
        assert_eq!(safe_name("émoji 🎉.png"), "émoji 🎉.png");
    }

    #[test]
    fn empty_gives_file() {
        assert_eq!(safe_name(""), "file");
        assert_eq!(safe_name("///"), "file");
        assert_eq!(safe_name("\\/./../"), "file");
    }

    #[test]
    fn long_components_are_cut_at_a_char_boundary_keeping_the_extension() {
        let long = "a".repeat(10_000) + ".txt";
        let name = safe_name(&long);
        assert_eq!(name.len(), MAX_COMPONENT);
        assert!(name.ends_with("aaa.txt"));

        let wide = "é".repeat(5_000) + ".jpeg";
        let name = safe_name(&wide);
        assert!(
            name.len() <= MAX_COMPONENT && name.len() >= MAX_COMPONENT - 1,
            "{}",
            name.len()
        );
        assert!(name.ends_with("é.jpeg"));

        // An "extension" too long to be one is not kept.
        let dotted = format!("x.{}", "y".repeat(300));
        assert_eq!(
            safe_name(&dotted),
            format!("x.{}", "y".repeat(MAX_COMPONENT - 2))
        );

        // A cut that ends in a dot is still no trailing dot.
        let name = safe_name(&format!("{}.{}", "b".repeat(199), "c".repeat(50)));
        assert_eq!(name, format!("{}_", "b".repeat(199)));
    }

    #[test]
    fn deep_trees_keep_the_first_directories_and_the_file() {
        let deep: Vec<String> = (0..40).map(|i| format!("d{i}")).collect();
        let name = safe_name(&(deep.join("/") + "/file.txt"));
        let components: Vec<&str> = name.split('/').collect();
        assert_eq!(components.len(), MAX_COMPONENTS);
        assert_eq!(components[0], "d0");
        assert_eq!(components[14], "d14");
        assert_eq!(components[15], "file.txt");
    }

    #[test]
    fn nasty_inputs_never_escape() {
        let pieces = [
            "",
            ".",
            "..",
            "...",
            "/",
            "\\",
            "C:",
            "c:\\",
            "a",
            ".a",
            "CON",
            "nul.txt",
            "com1",
            "\0",
            "\n",
            "\u{202e}",
            " ",
            "é",
            "日本",
            ":",
            "?*",
            "..\\..",
            "~",
            "$HOME",
            "%2e%2e",
            "\u{fe0f}",
            "\u{10ffff}",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for sep in ["/", "\\", ""] {
                        assert_safe(&[a, b, c].join(sep));
                    }
                }
            }
        }
        assert_safe(&"../".repeat(1000));
        assert_safe(&"a/".repeat(1000));
        assert_safe(&"é".repeat(10_000));
        assert_safe(&".".repeat(10_000));
    }

    proptest! {
        #[test]
        fn any_input_is_safe(offered in "\\PC*") {
            assert_safe(&offered);
        }

        #[test]
        fn any_path_like_input_is_safe(offered in "([./\\\\:]|[a-zA-Z]{1,3}|\\PC|\\p{Cc}){0,40}") {
            assert_safe(&offered);
        }
    }
}
