//! QEMU's console escape keys: the escape character (Ctrl-A unless `-echr` says otherwise)
//! followed by one key asks the emulator for something instead of typing to the guest.
//!
//! The keys are QEMU's (`chardev/char-mux.c`): `x` quits, `h` or `?` prints the list, `b`
//! sends a break, `t` toggles timestamps, `c` switches to the monitor, and the escape
//! character itself sends one escape character. `s` (QEMU: write a `-snapshot` overlay back)
//! and any other key are dropped, as in QEMU. `X` quits too.

/// What the user asked for through the escape character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapeAction {
    /// Quit the emulator (`x`).
    Quit,
    /// Print the list of escape keys (`h`).
    Help,
    /// Send a break to the guest (`b`).
    Break,
    /// Toggle console timestamps (`t`).
    ToggleTimestamps,
    /// Switch between the console and the monitor (`c`).
    Monitor,
}

/// What one typed byte amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A byte for the guest.
    Guest(u8),
    /// An escape sequence was completed.
    Action(EscapeAction),
}

/// QEMU's default escape character, Ctrl-A.
pub const DEFAULT_ESCAPE: u8 = 0x01;

/// Splits typed bytes into guest input and escape sequences.
#[derive(Debug)]
pub struct EscapeFilter {
    escape: u8,
    armed: bool,
}

impl Default for EscapeFilter {
    fn default() -> Self {
        Self::new(DEFAULT_ESCAPE)
    }
}

impl EscapeFilter {
    /// A filter whose escape character is `escape`.
    pub fn new(escape: u8) -> Self {
        Self {
            escape,
            armed: false,
        }
    }

    /// The escape character.
    pub fn escape(&self) -> u8 {
        self.escape
    }

    /// Takes one typed byte; None while it is swallowed (the escape character itself, or an
    /// unknown key after it).
    pub fn key(&mut self, b: u8) -> Option<Key> {
        if !self.armed {
            if b == self.escape {
                self.armed = true;
                return None;
            }
            return Some(Key::Guest(b));
        }
        self.armed = false;
        if b == self.escape {
            return Some(Key::Guest(b));
        }
        let action = match b {
            b'x' | b'X' => EscapeAction::Quit,
            b'h' | b'?' => EscapeAction::Help,
            b'b' => EscapeAction::Break,
            b't' => EscapeAction::ToggleTimestamps,
            b'c' => EscapeAction::Monitor,
            _ => return None,
        };
        Some(Key::Action(action))
    }
}

/// How the help names the escape character: `C-a` for Ctrl-A .. `C-z` for Ctrl-Z.
fn escape_name(escape: u8) -> Option<String> {
    (1..=26)
        .contains(&escape)
        .then(|| format!("C-{}", char::from(b'a' + escape - 1)))
}

/// The Ctrl-A h text, QEMU's lines for the keys tandem has, with `\r\n` line ends (the
/// terminal is in raw mode). There is no monitor yet, so no `c` line; nor an `s` line, which
/// QEMU itself prints only with `-snapshot` overlays it can write back.
pub fn help_text(escape: u8) -> String {
    let (header, e) = match escape_name(escape) {
        Some(name) => (String::new(), name),
        None => (
            format!("Escape-Char set to Ascii: 0x{escape:02x}\r\n\r\n"),
            "Escape-Char".to_string(),
        ),
    };
    format!(
        "\r\n{header}\
         {e} h    print this help\r\n\
         {e} x    exit emulator\r\n\
         {e} t    toggle console timestamps\r\n\
         {e} b    send break (magic sysrq)\r\n\
         {e} {e}  sends {e}\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(f: &mut EscapeFilter, input: &[u8]) -> Vec<Key> {
        input.iter().filter_map(|&b| f.key(b)).collect()
    }

    #[test]
    fn every_byte_but_the_escape_goes_to_the_guest() {
        let mut f = EscapeFilter::default();
        // Ctrl-C, Ctrl-Z, Ctrl-\ and Ctrl-D are the guest's.
        let keys = feed(&mut f, b"ls\r\x03\x1a\x1c\x04");
        assert_eq!(
            keys,
            b"ls\r\x03\x1a\x1c\x04".map(Key::Guest).to_vec(),
            "no byte is the emulator's"
        );
    }

    #[test]
    fn escape_keys_are_qemus() {
        let mut f = EscapeFilter::default();
        let keys = feed(
            &mut f,
            b"a\x01\x01b\x01xq\x01h\x01?\x01b\x01t\x01c\x01s\x01zc",
        );
        use EscapeAction::*;
        assert_eq!(
            keys,
            vec![
                Key::Guest(b'a'),
                Key::Guest(0x01),
                Key::Guest(b'b'),
                Key::Action(Quit),
                Key::Guest(b'q'),
                Key::Action(Help),
                Key::Action(Help),
                Key::Action(Break),
                Key::Action(ToggleTimestamps),
                Key::Action(Monitor),
                Key::Guest(b'c'),
            ]
        );
    }

    #[test]
    fn an_escape_split_across_reads_still_counts() {
        let mut f = EscapeFilter::default();
        assert_eq!(feed(&mut f, b"q\x01"), vec![Key::Guest(b'q')]);
        assert_eq!(feed(&mut f, b"x"), vec![Key::Action(EscapeAction::Quit)]);
    }

    #[test]
    fn echr_moves_the_escape_and_frees_ctrl_a() {
        let mut f = EscapeFilter::new(0x14);
        let keys = feed(&mut f, b"\x01x\x14\x14\x14x");
        assert_eq!(
            keys,
            vec![
                Key::Guest(0x01),
                Key::Guest(b'x'),
                Key::Guest(0x14),
                Key::Action(EscapeAction::Quit)
            ]
        );
    }

    #[test]
    fn help_names_the_escape_as_qemu_does() {
        let h = help_text(0x01);
        assert!(h.contains("C-a h    print this help\r\n"), "{h}");
        assert!(h.contains("C-a x    exit emulator\r\n"), "{h}");
        assert!(h.contains("C-a t    toggle console timestamps\r\n"), "{h}");
        assert!(h.contains("C-a b    send break (magic sysrq)\r\n"), "{h}");
        assert!(h.contains("C-a C-a  sends C-a\r\n"), "{h}");
        assert!(!h.contains(" c "), "no monitor line yet: {h}");
        assert!(help_text(0x14).contains("C-t x    exit emulator"));
        let odd = help_text(0x80);
        assert!(odd.contains("Escape-Char set to Ascii: 0x80"), "{odd}");
        assert!(odd.contains("Escape-Char x    exit emulator"), "{odd}");
    }
}
