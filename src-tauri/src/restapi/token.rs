//! `POST /token` and Bearer auth, as IPFS Cluster does them (SPEC §4): a JWT signed with
//! HMAC-SHA256 whose key is the basic-auth password of its issuer (`iss`, the user). A token
//! is then as good as that user's password, and changing the password revokes its tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// A JWT for `user`, signed with `password` (IPFS Cluster's: only `iss`, no expiry).
pub(crate) fn issue(user: &str, password: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(serde_json::json!({ "iss": user }).to_string());
    let signed = format!("{header}.{claims}");
    let signature = URL_SAFE_NO_PAD.encode(sign(password, signed.as_bytes()));
    format!("{signed}.{signature}")
}

fn sign(key: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The user a token was issued to, if it is valid for `creds`: HS256, an issuer that is a
/// configured user, that user's password as the key (checked in constant time), and not
/// expired or not yet valid when it says so.
pub(crate) fn verify(
    creds: &std::collections::BTreeMap<String, String>,
    token: &str,
) -> Option<String> {
    let mut parts = token.trim().split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let alg: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if alg["alg"] != "HS256" {
        return None;
    }
    let body: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    let issuer = body["iss"].as_str()?;
    let key = creds.get(issuer)?;
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).ok()?;
    mac.update(format!("{header}.{claims}").as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?)
        .ok()?;
    // NumericDate (RFC 7519): a JSON number, fractions allowed; a claim of another type is
    // not a date, and the token is refused rather than the claim ignored.
    let date = |name: &str| match &body[name] {
        serde_json::Value::Null => Some(None),
        v => v.as_f64().filter(|d| d.is_finite()).map(Some),
    };
    let (exp, nbf) = (date("exp")?, date("nbf")?);
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    if exp.is_some_and(|exp| now >= exp) || nbf.is_some_and(|nbf| now < nbf) {
        return None;
    }
    Some(issuer.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> std::collections::BTreeMap<String, String> {
        [("alice".to_string(), "a-secret".to_string())].into()
    }

    #[test]
    fn a_token_is_valid_for_its_issuer_until_the_password_changes() {
        let t = issue("alice", "a-secret");
        assert_eq!(verify(&creds(), &t).as_deref(), Some("alice"));
        let changed = [("alice".to_string(), "new".to_string())].into();
        assert_eq!(verify(&changed, &t), None);
        assert_eq!(
            verify(&creds(), &issue("bob", "a-secret")),
            None,
            "unknown issuer"
        );
        assert_eq!(
            verify(&creds(), &issue("alice", "guess")),
            None,
            "wrong key"
        );
    }

    #[test]
    fn tampered_malformed_unsigned_and_expired_tokens_are_refused() {
        let t = issue("alice", "a-secret");
        let mut tampered = t.clone();
        tampered.pop();
        tampered.push(if t.ends_with('A') { 'B' } else { 'A' });
        let none_alg = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            t.split('.').nth(1).unwrap()
        );
        let with_claims = |claims: &str| {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
            let claims = URL_SAFE_NO_PAD.encode(claims);
            let signed = format!("{header}.{claims}");
            format!(
                "{signed}.{}",
                URL_SAFE_NO_PAD.encode(sign("a-secret", signed.as_bytes()))
            )
        };
        let expired = with_claims(r#"{"iss":"alice","exp":1000}"#);
        let expired_fraction = with_claims(r#"{"iss":"alice","exp":1000.5}"#);
        let exp_text = with_claims(r#"{"iss":"alice","exp":"1000"}"#);
        let nbf_text = with_claims(r#"{"iss":"alice","nbf":"1000"}"#);
        let later = with_claims(r#"{"iss":"alice","nbf":99999999999.5}"#);
        let fine = with_claims(r#"{"iss":"alice","exp":99999999999.5,"nbf":1000.5}"#);
        assert_eq!(verify(&creds(), &fine).as_deref(), Some("alice"));
        for bad in [
            tampered.as_str(),
            "",
            "a.b",
            "a.b.c.d",
            "!!.??.**",
            &none_alg,
            &expired,
            &expired_fraction,
            &exp_text,
            &nbf_text,
            &later,
        ] {
            assert_eq!(verify(&creds(), bad), None, "{bad}");
        }
    }
}
