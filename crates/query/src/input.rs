//! The request as plain data (no web-framework types) and query-string decoding.

/// HTTP methods the REST API distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
    /// PATCH.
    Patch,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// OPTIONS.
    Options,
    /// Anything else.
    Other,
}

impl Method {
    /// Maps a method name.
    pub fn from_name(name: &str) -> Self {
        match name {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PATCH" => Self::Patch,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            _ => Self::Other,
        }
    }

    /// GET and HEAD run read-only.
    pub fn is_read(self) -> bool {
        matches!(self, Self::Get | Self::Head)
    }
}

/// One REST request, copied out of the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct RestInput<'a> {
    /// The method.
    pub method: Option<Method>,
    /// Path below `/rest/v1`, e.g. `/bottles`, `/rpc/fn` or `/`.
    pub path: &'a str,
    /// The raw query string (`apikey` already removed), without `?`.
    pub query: &'a str,
    /// All `Prefer` header values.
    pub prefer: Vec<&'a str>,
    /// `Accept`.
    pub accept: Option<&'a str>,
    /// `Range` (GET only).
    pub range: Option<&'a str>,
    /// `Accept-Profile`.
    pub accept_profile: Option<&'a str>,
    /// `Content-Profile`.
    pub content_profile: Option<&'a str>,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

impl RestInput<'_> {
    /// The method, GET when unset.
    pub fn method(&self) -> Method {
        self.method.unwrap_or(Method::Get)
    }
}

/// Splits a query string into decoded `(key, value)` pairs in order, as PostgREST does: form
/// encoding (`+` is a space), repeated keys kept, empty values dropped.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = form_decode(value);
            (!value.is_empty()).then(|| (form_decode(key), value))
        })
        .collect()
}

/// Percent-decoding with `+` as space. Invalid escapes stay as written; invalid UTF-8 is replaced.
pub fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => match bytes.get(index + 1..index + 3).and_then(hex_byte) {
                Some(byte) => {
                    out.push(byte);
                    index += 2;
                }
                None => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_form_decoded_ordered_and_repeatable() {
        assert_eq!(
            query_pairs(
                "a=eq.x+y&id=gt.1&id=lt.5&k=in.(%22a%2Cb%22,c)&empty=&meta-%3E%3Ecolor=eq.red"
            ),
            vec![
                ("a".into(), "eq.x y".into()),
                ("id".into(), "gt.1".into()),
                ("id".into(), "lt.5".into()),
                ("k".into(), "in.(\"a,b\",c)".into()),
                ("meta->>color".into(), "eq.red".into()),
            ]
        );
        assert_eq!(form_decode("a%2Bb%zz%"), "a+b%zz%");
    }
}
