//! Signing keys: PKCS#8 PEM files (ES256 on P-256, or Ed25519) or a key generated at start,
//! each with its RFC 7638 thumbprint as `kid` and its public half as a JWK.

use std::fmt;
use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, EncodingKey};

/// The JWS algorithms an assertion may be signed with.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SigningAlgorithm {
    /// ECDSA on P-256 with SHA-256 (what Google IAP and AWS ALB use); the default.
    #[default]
    Es256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlgorithm {
    /// `ES256` or `EdDSA`, as in a JWS header.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Parses `ES256` or `EdDSA` (exact spelling, as JWS requires).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    #[cfg(feature = "verifier")]
    pub(crate) const fn from_jws(algorithm: Algorithm) -> Option<Self> {
        match algorithm {
            Algorithm::ES256 => Some(Self::Es256),
            Algorithm::EdDSA => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub(crate) const fn jws(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key cannot be used. Messages name the file and never contain key bytes.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("assertion key {path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a PEM document.
    #[error("assertion key {path}: not a PEM file")]
    NotPem {
        /// The file.
        path: PathBuf,
    },
    /// The PEM document is not an unencrypted PKCS#8 private key.
    #[error(
        "assertion key {path}: PEM label is \"{label}\", expected \"PRIVATE KEY\" (unencrypted PKCS#8; convert with `openssl pkcs8 -topk8 -nocrypt`)"
    )]
    NotPkcs8 {
        /// The file.
        path: PathBuf,
        /// The PEM label found.
        label: String,
    },
    /// The PKCS#8 key is neither a P-256 ECDSA key nor an Ed25519 key.
    #[error("assertion key {path}: not a P-256 (ES256) or Ed25519 (EdDSA) PKCS#8 private key")]
    UnsupportedKey {
        /// The file.
        path: PathBuf,
    },
    /// No key was configured.
    #[error("assertion keys: at least one key file is needed")]
    NoKeys,
    /// Two files hold the same key.
    #[error("assertion key {path}: same key as an earlier file (kid {kid})")]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The shared key id.
        kid: String,
    },
    /// The crypto library failed to generate a key.
    #[error("assertion key: could not generate a {0} key")]
    Generate(SigningAlgorithm),
}

/// One private key: what signs, and the public JWK that verifies.
#[derive(Clone)]
pub struct AssertionKey {
    algorithm: SigningAlgorithm,
    kid: String,
    encoding: EncodingKey,
    public: Jwk,
    source: String,
}

impl fmt::Debug for AssertionKey {
    // The private key never reaches a log, even at debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionKey")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl AssertionKey {
    /// Reads an unencrypted PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`) holding a P-256 or
    /// an Ed25519 key; the algorithm follows from the key.
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&text, path)
    }

    /// Like [`from_pem_file`](Self::from_pem_file), from bytes already read; `path` names the key
    /// in errors.
    pub fn from_pem(text: &[u8], path: &Path) -> Result<Self, KeyError> {
        let pem = pem::parse(text).map_err(|_| KeyError::NotPem {
            path: path.to_owned(),
        })?;
        if pem.tag() != "PRIVATE KEY" {
            return Err(KeyError::NotPkcs8 {
                path: path.to_owned(),
                label: pem.tag().chars().take(40).collect(),
            });
        }
        Self::from_pkcs8_der(pem.contents(), path.display().to_string()).ok_or_else(|| {
            KeyError::UnsupportedKey {
                path: path.to_owned(),
            }
        })
    }

    /// A fresh key, for a single replica that publishes its own JWKS (replicas that share a
    /// JWKS must share key files instead).
    pub fn generate(algorithm: SigningAlgorithm) -> Result<Self, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let der = match algorithm {
            SigningAlgorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            SigningAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| KeyError::Generate(algorithm))?;
        Self::from_pkcs8_der(der.as_ref(), format!("generated {algorithm}"))
            .ok_or(KeyError::Generate(algorithm))
    }

    /// Recognises the key by trying each supported kind; the crypto library validates it
    /// (curve, point on curve) and yields the public key for the JWK.
    fn from_pkcs8_der(der: &[u8], source: String) -> Option<Self> {
        let (algorithm, params) =
            if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
                (
                    SigningAlgorithm::Es256,
                    ec_params(pair.public_key().as_ref())?,
                )
            } else if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
                (
                    SigningAlgorithm::EdDsa,
                    okp_params(pair.public_key().as_ref())?,
                )
            } else {
                return None;
            };
        let mut public = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(match algorithm {
                    SigningAlgorithm::Es256 => KeyAlgorithm::ES256,
                    SigningAlgorithm::EdDsa => KeyAlgorithm::EdDSA,
                }),
                ..CommonParameters::default()
            },
            algorithm: params,
        };
        let kid = public.thumbprint(ThumbprintHash::SHA256).ok()?;
        public.common.key_id = Some(kid.clone());
        let encoding = match algorithm {
            SigningAlgorithm::Es256 => EncodingKey::from_ec_der(der),
            SigningAlgorithm::EdDsa => EncodingKey::from_ed_der(der),
        };
        Some(Self {
            algorithm,
            kid,
            encoding,
            public,
            source,
        })
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }
    /// The key id: the RFC 7638 SHA-256 thumbprint of the public key, so every replica holding
    /// the same file derives the same id.
    pub fn kid(&self) -> &str {
        &self.kid
    }
    /// The public key as a JWK (with `kid`, `use: sig`, `alg`).
    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }
    /// Where the key came from (file name or `generated ES256`), for logs.
    pub fn source(&self) -> &str {
        &self.source
    }
    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// An uncompressed SEC1 point `04 || x || y` as JWK parameters.
fn ec_params(point: &[u8]) -> Option<AlgorithmParameters> {
    let (&0x04, xy) = point.split_first()? else {
        return None;
    };
    if xy.len() != 64 {
        return None;
    }
    let (x, y) = xy.split_at(32);
    Some(AlgorithmParameters::EllipticCurve(
        EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P256,
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        },
    ))
}

fn okp_params(public: &[u8]) -> Option<AlgorithmParameters> {
    (public.len() == 32).then(|| {
        AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public),
        })
    })
}

/// The keys in use: one signs, all are published (the others are being rotated in or out).
#[derive(Clone, Debug)]
pub struct KeySet {
    signing: AssertionKey,
    published: Vec<AssertionKey>,
}

impl KeySet {
    /// The first file signs; every file (the first included) is published in the JWKS.
    ///
    /// Rotation: add the new key as a second file and wait until every replica and every
    /// upstream's JWKS cache has it; then move it first; after the longest assertion life,
    /// remove the old file.
    pub fn load(files: &[PathBuf]) -> Result<Self, KeyError> {
        let keys = files
            .iter()
            .map(|path| AssertionKey::from_pem_file(path))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_keys(keys, files)
    }

    /// A set of one generated key.
    pub fn generate(algorithm: SigningAlgorithm) -> Result<Self, KeyError> {
        let key = AssertionKey::generate(algorithm)?;
        Ok(Self {
            signing: key.clone(),
            published: vec![key],
        })
    }

    /// A set from keys already loaded; the first signs. `files` names them in errors.
    fn from_keys(keys: Vec<AssertionKey>, files: &[PathBuf]) -> Result<Self, KeyError> {
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|earlier| earlier.kid == key.kid) {
                return Err(KeyError::Duplicate {
                    path: files.get(i).cloned().unwrap_or_default(),
                    kid: key.kid.clone(),
                });
            }
        }
        let signing = keys.first().cloned().ok_or(KeyError::NoKeys)?;
        Ok(Self {
            signing,
            published: keys,
        })
    }

    /// The key that signs new assertions.
    pub fn signing_key(&self) -> &AssertionKey {
        &self.signing
    }
    /// Every published key, the signing key first.
    pub fn published(&self) -> &[AssertionKey] {
        &self.published
    }

    /// The RFC 7517 key set of every published key.
    pub fn jwk_set(&self) -> JwkSet {
        JwkSet {
            keys: self
                .published
                .iter()
                .map(|k| k.public_jwk().clone())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn generated_keys_have_thumbprint_kids_and_public_jwks() {
        for alg in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
            let key = AssertionKey::generate(alg).unwrap();
            assert_eq!(key.algorithm(), alg);
            assert_eq!(key.kid().len(), 43, "base64url of 32 bytes");
            let json = serde_json::to_value(key.public_jwk()).unwrap();
            assert_eq!(json["kid"], key.kid());
            assert_eq!(json["alg"], alg.as_str());
            assert_eq!(json["use"], "sig");
            assert!(json.get("d").is_none(), "no private part");
        }
    }

    #[test]
    fn errors_name_the_file_and_never_the_key_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let sec1 = write(
            dir.path(),
            "sec1.pem",
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBmF2fWm\n-----END EC PRIVATE KEY-----\n",
        );
        let junk = write(dir.path(), "junk.pem", "hello");
        let wrong = write(
            dir.path(),
            "wrong.pem",
            "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n",
        );
        let cases: [(&Path, &str); 4] = [
            (&sec1, "expected \"PRIVATE KEY\""),
            (&junk, "not a PEM file"),
            (&wrong, "not a P-256 (ES256) or Ed25519"),
            (&dir.path().join("missing.pem"), "cannot read"),
        ];
        for (path, expected) in cases {
            let err = AssertionKey::from_pem_file(path).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(expected), "{err}");
            assert!(
                !err.contains("MHcCAQEEIBmF2fWm") && !err.contains("AAECAwQF"),
                "{err}"
            );
        }
    }

    #[test]
    fn key_set_signs_with_the_first_and_publishes_all_and_refuses_duplicates() {
        let a = AssertionKey::generate(SigningAlgorithm::Es256).unwrap();
        let b = AssertionKey::generate(SigningAlgorithm::EdDsa).unwrap();
        let files = [PathBuf::from("a.pem"), PathBuf::from("b.pem")];
        let set = KeySet::from_keys(vec![a.clone(), b.clone()], &files).unwrap();
        assert_eq!(set.signing_key().kid(), a.kid());
        let kids: Vec<_> = set
            .jwk_set()
            .keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap())
            .collect();
        assert_eq!(kids, [a.kid(), b.kid()]);
        let dup = KeySet::from_keys(vec![a.clone(), a], &files).unwrap_err();
        assert!(dup.to_string().contains("b.pem"), "{dup}");
        assert!(matches!(
            KeySet::from_keys(vec![], &[]),
            Err(KeyError::NoKeys)
        ));
    }

    #[test]
    fn debug_output_never_contains_the_private_key() {
        let key = AssertionKey::generate(SigningAlgorithm::Es256).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains(key.kid()));
        assert!(!debug.contains("encoding"));
    }
}
