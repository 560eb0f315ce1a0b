//! Where in the document a JSON syntax error is: the path of the member being read at the
//! error's line and column (`process.env[3]`), so a config with, say, invalid UTF-8 in one
//! environment variable is answered with the field, not only a position. A small scanner over
//! the bytes before the error; it never fails (a path it cannot tell is `None`).

use super::report::{field, index, map_key};

enum Frame {
    /// An object: the member key being read, and whether the next string is a key.
    Object { key: Option<String>, expect_key: bool },
    /// An array: the index of the element being read.
    Array { index: usize },
}

/// Byte offset of 1-based `line` and `column` in `bytes` (clamped to its length).
fn offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match bytes[start..].iter().position(|b| *b == b'\n') {
            Some(nl) => start += nl + 1,
            None => return bytes.len(),
        }
    }
    (start + column.saturating_sub(1)).min(bytes.len())
}

/// The JSON path (this module's notation) of the value being read at `line`:`column`, if the
/// error lies inside a member of the document.
pub(crate) fn path_at(bytes: &[u8], line: usize, column: usize) -> Option<String> {
    let end = offset(bytes, line, column);
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < end {
        match bytes[i] {
            b'{' => stack.push(Frame::Object { key: None, expect_key: true }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, expect_key }) => (*key, *expect_key) = (None, true),
                None => {}
            },
            b'"' => {
                let start = i + 1;
                i = start;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, expect_key: expect @ true }) = stack.last_mut() {
                    let raw = &bytes[start..i.min(bytes.len())];
                    *key = Some(
                        serde_json::from_slice::<String>(&[b"\"", raw, b"\""].concat())
                            .unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned()),
                    );
                    *expect = false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        path = match frame {
            Frame::Object { key: Some(k), .. } if is_identifier(k) => field(&path, k),
            Frame::Object { key: Some(k), .. } => map_key(&path, k),
            Frame::Object { key: None, .. } => break,
            Frame::Array { index: i } => index(&path, *i),
        };
    }
    (!path.is_empty()).then_some(path)
}

fn is_identifier(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::path_at;
    use test_case::test_case;

    #[test_case(b"{\"process\": {\"env\": [\"A=1\", \"B=\xff\"]}}", 1, 33, Some("process.env[1]"); "invalid utf-8 in env")]
    #[test_case(b"{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}", 3, 3, None; "between members")]
    #[test_case(b"{\"linux\": {\"sysctl\": {\"net.a\": tru}}}", 1, 34, Some("linux.sysctl.\"net.a\""); "quoted key")]
    #[test_case(b"{\"a\": [1, [2, {\"b\\\"c\": x", 1, 25, Some("a[1][1].\"b\\\"c\""); "escaped quote in key")]
    #[test_case(b"", 1, 1, None; "empty")]
    #[test_case(b"[", 9, 9, Some("[0]"); "past the end")]
    fn paths(bytes: &[u8], line: usize, column: usize, want: Option<&str>) {
        assert_eq!(path_at(bytes, line, column).as_deref(), want);
    }
}
