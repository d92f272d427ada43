//! A connection URL that holds credentials: shown everywhere with its password (and any
//! password or token option) replaced by `***`.

use std::fmt;

const MASK: &str = "***";

/// Query options whose value is a secret (matched case-insensitively, as the driver does).
const SECRET_OPTIONS: [&str; 2] = ["password", "token"];

/// A URL such as `mongodb://user:secret@db1:27017/st2?authSource=admin`. `Display` and
/// `Debug` print it redacted; only [`SecretUrl::expose`] gives the password, for the driver.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: String) -> Self {
        Self(url)
    }

    /// The URL as written, password included: for the driver only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hosts of the URL (`db1:27017,db2:27017`), for messages.
    pub fn hosts(&self) -> &str {
        let (_, authority, _) = self.split();
        authority
            .rsplit_once('@')
            .map_or(authority, |(_, hosts)| hosts)
    }

    /// `text` with every secret of this URL replaced by `***`: for messages that come from
    /// elsewhere (the driver) and might quote it.
    pub fn redact(&self, text: &str) -> String {
        // Every occurrence, wherever it is: a short password may mask more than it should,
        // never less.
        let mut text = text.replace(&self.0, &self.to_string());
        for secret in self.secrets() {
            text = text.replace(secret, MASK);
            if let Ok(decoded) = percent_decode(secret)
                && !decoded.is_empty()
            {
                text = text.replace(&decoded, MASK);
            }
        }
        text
    }

    /// `(scheme://, authority, /path?query)`.
    fn split(&self) -> (&str, &str, &str) {
        let start = self.0.find("://").map_or(0, |i| i + 3);
        let (scheme, rest) = self.0.split_at(start);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        (scheme, authority, tail)
    }

    /// The password and the values of secret options, as written.
    fn secrets(&self) -> Vec<&str> {
        let (_, authority, tail) = self.split();
        let password = authority
            .rsplit_once('@')
            .and_then(|(userinfo, _)| userinfo.split_once(':'))
            .map(|(_, password)| password);
        let options = tail
            .split_once('?')
            .map_or("", |(_, query)| query)
            .split('&')
            .filter_map(|option| option.split_once('='))
            .filter(|(key, _)| is_secret_option(key))
            .map(|(_, value)| value);
        password
            .into_iter()
            .chain(options)
            .filter(|secret| !secret.is_empty())
            .collect()
    }
}

fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_OPTIONS.iter().any(|secret| key.contains(secret))
        // `authMechanismProperties=AWS_SESSION_TOKEN:...` carries a token in its value.
        || key == "authmechanismproperties"
}

fn percent_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, authority, tail) = self.split();
        f.write_str(scheme)?;
        match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => match userinfo.split_once(':') {
                Some((user, _)) => write!(f, "{user}:{MASK}@{hosts}")?,
                None => write!(f, "{userinfo}@{hosts}")?,
            },
            None => f.write_str(authority)?,
        }
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        f.write_str(path)?;
        if tail.contains('?') {
            f.write_str("?")?;
            for (i, option) in query.split('&').enumerate() {
                if i > 0 {
                    f.write_str("&")?;
                }
                match option.split_once('=') {
                    Some((key, _)) if is_secret_option(key) => write!(f, "{key}={MASK}")?,
                    _ => f.write_str(option)?,
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::SecretUrl;

    fn url(text: &str) -> SecretUrl {
        SecretUrl::new(text.to_string())
    }

    #[test]
    fn the_password_is_masked_and_the_rest_is_kept() {
        let secret = url("mongodb://packsync:s3cr%40t@db1:27017,db2:27017/st2?authSource=admin");
        assert_eq!(
            secret.to_string(),
            "mongodb://packsync:***@db1:27017,db2:27017/st2?authSource=admin"
        );
        assert_eq!(
            format!("{secret:?}"),
            "SecretUrl(mongodb://packsync:***@db1:27017,db2:27017/st2?authSource=admin)"
        );
        assert_eq!(secret.hosts(), "db1:27017,db2:27017");
    }

    #[test]
    fn secret_options_are_masked() {
        let secret = url(
            "mongodb+srv://u:p@cluster.example/?tlsCertificateKeyFilePassword=kp&\
             authMechanismProperties=AWS_SESSION_TOKEN:tok&appName=x",
        );
        assert_eq!(
            secret.to_string(),
            "mongodb+srv://u:***@cluster.example/?tlsCertificateKeyFilePassword=***&\
             authMechanismProperties=***&appName=x"
        );
    }

    #[test]
    fn urls_without_credentials_are_shown_as_they_are() {
        for text in [
            "mongodb://db1",
            "mongodb://db1:27017/st2",
            "mongodb://user@db1/",
        ] {
            assert_eq!(url(text).to_string(), text);
        }
        assert_eq!(url("mongodb://user@db1/").hosts(), "db1");
    }

    #[test]
    fn redact_masks_the_password_in_any_text_decoded_or_not() {
        let secret = url("mongodb://packsync:s3cr%40t@db1/");
        assert_eq!(
            secret.redact(
                "failed for mongodb://packsync:s3cr%40t@db1/: password s3cr@t or s3cr%40t refused"
            ),
            "failed for mongodb://packsync:***@db1/: password *** or *** refused"
        );
    }
}
