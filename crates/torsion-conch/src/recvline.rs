//! Line editing for terminal consoles, as Twisted's `twisted.conch.recvline` over its
//! `insults` terminal layer, kept small and I/O-free: feed [`LineEditor`] the bytes a
//! terminal sends, get [`Edit`] events and the bytes (VT100 escape sequences) that redraw
//! the line.
//!
//! In [`Mode::Vt100`] the editor echoes and handles printable input, Backspace, Delete,
//! Left/Right, Home/End (and Ctrl-A/Ctrl-E), Up/Down through the history, Ctrl-C (cancel the
//! line), Ctrl-D (end of input on an empty line), Ctrl-U (erase the line) and Tab, which asks
//! a completion callback (several candidates are listed in columns fitting the
//! [terminal's width](LineEditor::set_width) when it is known). In [`Mode::Plain`], for dumb terminals and telnet clients in line
//! mode, it echoes nothing and only splits lines.
//!
//! ```
//! use torsion_conch::recvline::{Edit, LineEditor, Mode};
//!
//! let mut ed = LineEditor::new(Mode::Vt100, "> ");
//! let mut out = Vec::new();
//! // "helo", Left, "l", Enter
//! let ev = ed.feed(b"helo\x1b[Dl\r", &mut out);
//! assert_eq!(ev, vec![Edit::Line("hello".into())]);
//! // Up brings it back from the history.
//! ed.feed(b"\x1b[A", &mut out);
//! assert_eq!(ed.line(), "hello");
//! ```

/// How the terminal is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A VT100-compatible terminal in character mode: this end echoes and redraws.
    Vt100,
    /// A dumb terminal or a client editing lines itself: no echo, lines only.
    Plain,
}

/// What the editor made of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// A finished line (Enter).
    Line(String),
    /// Ctrl-C: the line was dropped.
    Cancel,
    /// Ctrl-D on an empty line: end of input.
    Eof,
}

/// The longest line kept, in characters; input past it is ignored.
pub const MAX_LINE: usize = 4096;
/// How many lines the history keeps.
pub const MAX_HISTORY: usize = 200;

/// A completion callback: given the text before the cursor, the candidate full words for
/// the word that ends there.
pub type Completer = Box<dyn Fn(&str) -> Vec<String>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Esc {
    None,
    Start,
    Csi,
    Ss3,
}

/// The I/O-free line editor; see the module documentation.
pub struct LineEditor {
    mode: Mode,
    prompt: String,
    line: Vec<char>,
    cursor: usize,
    history: Vec<String>,
    /// Position while browsing the history, and the line being typed before browsing.
    browsing: Option<(usize, Vec<char>)>,
    esc: Esc,
    csi: Vec<u8>,
    utf8: Vec<u8>,
    last_cr: bool,
    completer: Option<Completer>,
    width: Option<u16>,
}

impl LineEditor {
    /// A new editor showing `prompt` (written by [`LineEditor::prompt`]).
    pub fn new(mode: Mode, prompt: &str) -> LineEditor {
        LineEditor {
            mode,
            prompt: prompt.to_string(),
            line: Vec::new(),
            cursor: 0,
            history: Vec::new(),
            browsing: None,
            esc: Esc::None,
            csi: Vec::new(),
            utf8: Vec::new(),
            last_cr: false,
            completer: None,
            width: None,
        }
    }

    /// Sets the terminal's width in columns (telnet's NAWS, an SSH pty request or window
    /// change): Tab then lists several completions in columns that fit it, as readline does.
    /// `None` or 0 (unknown, the default) lists them on one line.
    pub fn set_width(&mut self, cols: Option<u16>) {
        self.width = cols.filter(|&c| c > 0);
    }

    /// Sets the callback that Tab asks for completions.
    pub fn set_completer(&mut self, completer: Completer) {
        self.completer = Some(completer);
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Changes the prompt (shown from the next [`LineEditor::prompt`] on).
    pub fn set_prompt(&mut self, prompt: &str) {
        self.prompt = prompt.to_string();
    }

    /// The line being edited.
    pub fn line(&self) -> String {
        self.line.iter().collect()
    }

    /// The cursor's position in the line, in characters.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// The history, oldest first.
    pub fn history(&self) -> &[String] {
        &self.history
    }

    /// Writes the prompt (and the line typed so far) to `out`.
    pub fn prompt(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.prompt.as_bytes());
        if self.mode == Mode::Vt100 {
            out.extend_from_slice(self.line().as_bytes());
        }
    }

    /// Parses terminal input; redraws go to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Vec<Edit> {
        let mut events = Vec::new();
        for &b in data {
            let last_cr = std::mem::replace(&mut self.last_cr, false);
            match self.esc {
                Esc::Start => {
                    self.esc = match b {
                        b'[' => Esc::Csi,
                        b'O' => Esc::Ss3,
                        _ => Esc::None,
                    };
                    self.csi.clear();
                    continue;
                }
                Esc::Csi => {
                    if (0x40..=0x7e).contains(&b) {
                        self.esc = Esc::None;
                        let params = std::mem::take(&mut self.csi);
                        self.csi_key(&params, b, out);
                    } else if self.csi.len() < 16 {
                        self.csi.push(b);
                    }
                    continue;
                }
                Esc::Ss3 => {
                    self.esc = Esc::None;
                    self.csi_key(&[], b, out);
                    continue;
                }
                Esc::None => {}
            }
            match b {
                b'\r' => {
                    self.last_cr = true;
                    events.push(self.enter(out));
                }
                b'\n' | 0 if last_cr => {}
                b'\n' => events.push(self.enter(out)),
                0x1b if self.mode == Mode::Vt100 => self.esc = Esc::Start,
                0x03 => {
                    if self.mode == Mode::Vt100 {
                        out.extend_from_slice(b"^C\r\n");
                    }
                    self.line.clear();
                    self.cursor = 0;
                    self.browsing = None;
                    events.push(Edit::Cancel);
                }
                0x04 => {
                    if self.line.is_empty() {
                        events.push(Edit::Eof);
                    } else if self.cursor < self.line.len() {
                        self.line.remove(self.cursor);
                        self.redraw(out);
                    }
                }
                0x7f | 0x08 if self.cursor > 0 => {
                    self.cursor -= 1;
                    self.line.remove(self.cursor);
                    self.redraw(out);
                }
                0x01 => self.move_to(0, out),
                0x05 => self.move_to(self.line.len(), out),
                0x02 => self.move_to(self.cursor.saturating_sub(1), out),
                0x06 => self.move_to((self.cursor + 1).min(self.line.len()), out),
                0x15 => {
                    self.line.clear();
                    self.cursor = 0;
                    self.redraw(out);
                }
                b'\t' if self.mode == Mode::Vt100 => self.complete(out),
                b'\t' => self.insert('\t', out),
                0x80.. => {
                    self.utf8.push(b);
                    match std::str::from_utf8(&self.utf8) {
                        Ok(s) => {
                            let chars: Vec<char> = s.chars().collect();
                            self.utf8.clear();
                            for c in chars {
                                self.insert(c, out);
                            }
                        }
                        Err(e) if e.error_len().is_none() && self.utf8.len() < 4 => {}
                        Err(_) => self.utf8.clear(),
                    }
                }
                0x20..=0x7e => self.insert(b as char, out),
                _ => {}
            }
        }
        events
    }

    fn enter(&mut self, out: &mut Vec<u8>) -> Edit {
        if self.mode == Mode::Vt100 {
            out.extend_from_slice(b"\r\n");
        }
        let line: String = std::mem::take(&mut self.line).into_iter().collect();
        self.cursor = 0;
        self.browsing = None;
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            if self.history.len() == MAX_HISTORY {
                self.history.remove(0);
            }
            self.history.push(line.clone());
        }
        Edit::Line(line)
    }

    fn csi_key(&mut self, params: &[u8], key: u8, out: &mut Vec<u8>) {
        match (params, key) {
            (_, b'A') => self.history_step(true, out),
            (_, b'B') => self.history_step(false, out),
            (_, b'C') => self.move_to((self.cursor + 1).min(self.line.len()), out),
            (_, b'D') => self.move_to(self.cursor.saturating_sub(1), out),
            (_, b'H') | (b"1" | b"7", b'~') => self.move_to(0, out),
            (_, b'F') | (b"4" | b"8", b'~') => self.move_to(self.line.len(), out),
            (b"3", b'~') if self.cursor < self.line.len() => {
                self.line.remove(self.cursor);
                self.redraw(out);
            }
            _ => {}
        }
    }

    fn history_step(&mut self, back: bool, out: &mut Vec<u8>) {
        if self.history.is_empty() {
            return;
        }
        let pos = match (&self.browsing, back) {
            (None, true) => {
                self.browsing = Some((self.history.len(), self.line.clone()));
                self.history.len() - 1
            }
            (None, false) => return,
            (Some((p, _)), true) => p.saturating_sub(1),
            (Some((p, _)), false) => p + 1,
        };
        if let Some((p, typed)) = &mut self.browsing {
            *p = pos;
            self.line = match self.history.get(pos) {
                Some(h) => h.chars().collect(),
                None => {
                    let typed = typed.clone();
                    self.browsing = None;
                    typed
                }
            };
        }
        self.cursor = self.line.len();
        self.redraw(out);
    }

    fn insert(&mut self, c: char, out: &mut Vec<u8>) {
        if self.line.len() >= MAX_LINE {
            return;
        }
        self.line.insert(self.cursor, c);
        self.cursor += 1;
        if self.mode == Mode::Vt100 {
            if self.cursor == self.line.len() {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            } else {
                self.redraw(out);
            }
        }
    }

    fn move_to(&mut self, pos: usize, out: &mut Vec<u8>) {
        if pos != self.cursor {
            self.cursor = pos;
            self.redraw(out);
        }
    }

    /// Rewrites the whole line: carriage return, erase to the end, prompt and line, then
    /// the cursor back to its place.
    fn redraw(&self, out: &mut Vec<u8>) {
        if self.mode != Mode::Vt100 {
            return;
        }
        out.extend_from_slice(b"\r\x1b[K");
        self.prompt(out);
        let back = self.line.len() - self.cursor;
        if back > 0 {
            out.extend_from_slice(format!("\x1b[{back}D").as_bytes());
        }
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        let Some(completer) = &self.completer else {
            return;
        };
        let before: String = self.line[..self.cursor].iter().collect();
        let word_start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[word_start..];
        let mut candidates: Vec<String> = completer(&before)
            .into_iter()
            .filter(|c| c.starts_with(word))
            .collect();
        candidates.sort();
        candidates.dedup();
        let Some(first) = candidates.first() else {
            return;
        };
        let common: String = {
            let mut len = first.len();
            for c in &candidates[1..] {
                len = first
                    .char_indices()
                    .zip(c.chars())
                    .take_while(|((_, a), b)| a == b)
                    .last()
                    .map_or(0, |((i, a), _)| i + a.len_utf8())
                    .min(len);
            }
            first[..len].to_string()
        };
        let addition: Vec<char> = common[word.len()..].chars().collect();
        if !addition.is_empty() {
            for c in addition {
                self.insert(c, out);
            }
            if candidates.len() == 1 && self.cursor == self.line.len() {
                // A finished name: nothing to add; the user goes on typing.
            }
        } else if candidates.len() > 1 {
            out.extend_from_slice(b"\r\n");
            self.list(&candidates, out);
            self.redraw(out);
        }
    }

    /// Writes `names`, each line ended by CRLF: in columns filling the terminal's width,
    /// sorted down the columns, or on one line when the width is unknown.
    fn list(&self, names: &[String], out: &mut Vec<u8>) {
        let Some(width) = self.width else {
            out.extend_from_slice(names.join("  ").as_bytes());
            out.extend_from_slice(b"\r\n");
            return;
        };
        let column = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) + 2;
        let columns = (usize::from(width) / column).max(1);
        let rows = names.len().div_ceil(columns);
        for row in 0..rows {
            let mut line = String::new();
            for name in names.iter().skip(row).step_by(rows) {
                let pad = column - name.chars().count();
                line.push_str(name);
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.extend_from_slice(line.trim_end().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ed: &mut LineEditor, input: &[u8]) -> Vec<Edit> {
        let mut out = Vec::new();
        ed.feed(input, &mut out)
    }

    #[test]
    fn backspace_home_end_delete() {
        let mut ed = LineEditor::new(Mode::Vt100, "> ");
        assert!(run(&mut ed, b"abcd\x7f").is_empty());
        assert_eq!(ed.line(), "abc");
        run(&mut ed, b"\x1b[Hx\x1b[Fy\x01\x1b[3~");
        assert_eq!(ed.line(), "abcy");
        run(&mut ed, b"\x1bOH\x05z");
        assert_eq!(ed.line(), "abcyz");
    }

    #[test]
    fn ctrl_c_cancels_ctrl_d_ends_only_on_empty_line() {
        let mut ed = LineEditor::new(Mode::Vt100, "> ");
        assert_eq!(run(&mut ed, b"abc\x03"), vec![Edit::Cancel]);
        assert_eq!(ed.line(), "");
        assert_eq!(run(&mut ed, b"ab\x01\x04"), vec![]);
        assert_eq!(ed.line(), "b");
        assert_eq!(run(&mut ed, b"\x15\x04"), vec![Edit::Eof]);
    }

    #[test]
    fn history_up_down_restores_typed_line() {
        let mut ed = LineEditor::new(Mode::Vt100, "> ");
        run(&mut ed, b"one\rtwo\r\nthr");
        assert_eq!(ed.history(), ["one", "two"]);
        run(&mut ed, b"\x1b[A\x1b[A");
        assert_eq!(ed.line(), "one");
        run(&mut ed, b"\x1b[A");
        assert_eq!(ed.line(), "one");
        run(&mut ed, b"\x1b[B");
        assert_eq!(ed.line(), "two");
        run(&mut ed, b"\x1b[B");
        assert_eq!(ed.line(), "thr");
    }

    #[test]
    fn tab_completes_common_prefix_then_lists() {
        let mut ed = LineEditor::new(Mode::Vt100, "> ");
        ed.set_completer(Box::new(|_| {
            vec!["connections".into(), "connect_count".into(), "stop".into()]
        }));
        let mut out = Vec::new();
        ed.feed(b"x = con\t", &mut out);
        assert_eq!(ed.line(), "x = connect");
        out.clear();
        ed.feed(b"\t", &mut out);
        let shown = String::from_utf8_lossy(&out);
        assert!(shown.contains("connect_count  connections"), "{shown:?}");
        ed.feed(b"i\t", &mut out);
        assert_eq!(ed.line(), "x = connections");
        ed.feed(b"\x01s\t", &mut out);
        assert_eq!(ed.line(), "stopx = connections");
    }

    #[test]
    fn completions_fill_the_terminal_width_in_columns() {
        let mut ed = LineEditor::new(Mode::Vt100, "> ");
        ed.set_completer(Box::new(|_| {
            ["gamma", "alpha", "epsilon", "beta", "delta"]
                .map(String::from)
                .to_vec()
        }));
        // 7 characters and 2 spaces a column: two fit in 20, sorted down the columns.
        ed.set_width(Some(20));
        let mut out = Vec::new();
        ed.feed(b"\t", &mut out);
        let shown = String::from_utf8_lossy(&out);
        assert!(
            shown.starts_with("\r\nalpha    epsilon\r\nbeta     gamma\r\ndelta\r\n"),
            "{shown:?}"
        );
        // Narrower than one column: one a line.
        ed.set_width(Some(4));
        out.clear();
        ed.feed(b"\t", &mut out);
        assert!(String::from_utf8_lossy(&out).starts_with("\r\nalpha\r\nbeta\r\n"));
        // Unknown (a pty of 0 columns): one line.
        ed.set_width(Some(0));
        out.clear();
        ed.feed(b"\t", &mut out);
        assert!(
            String::from_utf8_lossy(&out).starts_with("\r\nalpha  beta  delta  epsilon  gamma\r\n")
        );
    }

    #[test]
    fn plain_mode_echoes_nothing_and_splits_lines() {
        let mut ed = LineEditor::new(Mode::Plain, "> ");
        let mut out = Vec::new();
        let ev = ed.feed(b"1 + 2\r\n\x1b[Ax\r\0", &mut out);
        assert!(out.is_empty());
        assert_eq!(
            ev,
            vec![Edit::Line("1 + 2".into()), Edit::Line("[Ax".into())]
        );
    }

    #[test]
    fn utf8_and_long_lines_are_bounded() {
        let mut ed = LineEditor::new(Mode::Vt100, "> ");
        run(&mut ed, "héllo".as_bytes());
        assert_eq!(ed.line(), "héllo");
        run(&mut ed, &vec![b'a'; MAX_LINE * 2]);
        assert_eq!(ed.line().chars().count(), MAX_LINE);
    }
}
