//! `iam-join`: make IAM join proofs from local AWS credentials and check them against a verifier.
//!
//! Run `iam-join --help` and `iam-join <command> --help` for usage.
#![deny(unsafe_code)]
#![warn(missing_docs)]
// The doc comments on the clap types are `--help` text, not rustdoc.
#![allow(
    rustdoc::broken_intra_doc_links,
    rustdoc::invalid_html_tags,
    rustdoc::bare_urls
)]

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand, ValueEnum};
use iam_join_client::{
    Binding, ClientError, DEFAULT_PREFIX, ProofBuilder, SigningForm, StsEndpoint,
    TeleportAgentConfig, VerifierClient, WhoAmI, k8s_token_for_endpoint, load_credentials,
    region_or_default, sts_endpoint,
};
use tracing_subscriber::EnvFilter;

/// Environment variable read for the audience when no binding option is given.
const AUDIENCE_ENV: &str = "IAM_JOIN_AUDIENCE";

#[derive(Parser)]
#[command(
    name = "iam-join",
    version,
    about = "Prove this machine's AWS identity to an iam-join verifier (Teleport-style IAM join)",
    long_about = "Prove this machine's AWS identity to an iam-join verifier.\n\n\
        iam-join signs an sts:GetCallerIdentity request with the local AWS credentials but does \
        not send it; the signed request, encoded as a proof token, goes to the verifier, which \
        has STS check it. Credentials come from the standard AWS sources: environment variables, \
        ~/.aws files (AWS_PROFILE or --profile), web identity (EKS IRSA), ECS / EKS Pod Identity \
        container credentials, and EC2 instance metadata (IMDSv2).\n\n\
        Nothing but the requested token is ever printed on stdout; credentials, signatures and \
        session tokens never appear in messages or logs.",
    after_help = "Examples:\n  \
        TOKEN=$(iam-join token --audience teleport.example.com)\n  \
        curl -H \"Authorization: Bearer $TOKEN\" https://teleport.example.com/app\n  \
        iam-join whoami --proxy https://teleport.example.com --challenge --token iam-token\n  \
        iam-join --config /etc/teleport.yaml whoami --challenge\n  \
        iam-join k8s-token --cluster-id my-cluster --region us-west-2"
)]
struct Cli {
    /// Log progress to stderr (never credentials, signatures or proofs). RUST_LOG, when set,
    /// overrides the log filter.
    #[arg(short, long, global = true)]
    verbose: bool,

    /// Teleport agent config (e.g. /etc/teleport.yaml) to take the join token name
    /// (teleport.join_params.token_name, method must be iam) and the proxy address
    /// (teleport.proxy_server, else auth_server / auth_servers[0]) from. Used by `whoami`;
    /// --proxy and --token override it.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a proof token (only the token, on stdout) for use in an Authorization header.
    #[command(long_about = "Print a proof token, and nothing else, on stdout, so \
        `$(iam-join token --audience A)` works.\n\n\
        The token is `iam-join-v1.` + base64url of the signed sts:GetCallerIdentity request. It \
        is bound to the verifier by exactly one signed header: --audience A \
        (x-iam-join-audience, reusable until it expires; must equal the verifier's configured \
        audience) or --challenge C (x-teleport-challenge, single-use; get C from the verifier's \
        POST /v1/iam-join/challenge). Without either, the audience is read from IAM_JOIN_AUDIENCE.\n\n\
        --k8s --cluster-id X prints an EKS-style `k8s-aws-v1.` token instead, exactly as \
        `aws eks get-token --cluster-name X` would (same as the k8s-token command).\n\n\
        Anyone holding the token can use it until it expires (15 minutes for POST, --expires for \
        GET): treat it as a secret.")]
    Token(TokenArgs),

    /// Print an EKS-style `k8s-aws-v1.` token, as `aws eks get-token` does.
    #[command(
        name = "k8s-token",
        long_about = "Print a `k8s-aws-v1.` token on stdout: a \
        GetCallerIdentity URL presigned for 60 seconds with x-k8s-aws-id: <cluster-id> signed, \
        exactly as `aws eks get-token --cluster-name <cluster-id>` prints it (the token only, \
        not the ExecCredential JSON). Verifiers bind these by the cluster ID."
    )]
    K8sToken(K8sTokenArgs),

    /// Make a proof, have a verifier check it, and print the identity it proved.
    #[command(
        long_about = "Make a proof, send it to a verifier's GET {prefix}/whoami, and print \
        the AWS identity, join token and roles the verifier proved: the iam-join twin of \
        `aws sts get-caller-identity`, for checking a setup end to end.\n\n\
        The verifier is --proxy URL or, with --config, https://<teleport.proxy_server>. With \
        --challenge, a fresh challenge is fetched from POST {prefix}/challenge and the proof is \
        bound to it (what join routes need); otherwise the proof is bound to --audience (or \
        IAM_JOIN_AUDIENCE), which must equal the verifier's configured audience. There is no \
        default audience: a proof bound to the wrong audience would only be refused.\n\n\
        Prints `key: value` lines, or the verifier's JSON with --json. A refusal prints the \
        verifier's error code and message and exits 1."
    )]
    Whoami(WhoamiArgs),
}

#[derive(Args)]
struct AwsArgs {
    /// AWS region of the STS endpoint to sign for [default: AWS_REGION, AWS_DEFAULT_REGION,
    /// the profile's region, instance metadata, else us-east-1 with a warning]
    #[arg(long, value_name = "REGION")]
    region: Option<String>,

    /// Sign for a FIPS STS endpoint (sts-fips.<region>.amazonaws.com; GovCloud endpoints are FIPS
    /// already; other commercial regions fall back to sts-fips.us-east-1 with a warning).
    #[arg(long)]
    fips: bool,

    /// Use only this profile of ~/.aws/config and ~/.aws/credentials (like `aws --profile`),
    /// instead of the default credential chain.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Form {
    /// Signed POST, auth in the authorization header (Teleport's form).
    Post,
    /// Presigned GET, auth in the query string (aws-iam-authenticator's form).
    Get,
}

#[derive(Args)]
struct FormArgs {
    /// Signing form of the proof.
    #[arg(long, value_enum, default_value = "post")]
    form: Form,

    /// Lifetime of a --form get proof in seconds (X-Amz-Expires, 1..=900).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=900))]
    expires: Option<u64>,
}

impl FormArgs {
    fn signing_form(&self) -> Result<SigningForm, String> {
        match (self.form, self.expires) {
            (Form::Post, None) => Ok(SigningForm::Post),
            (Form::Post, Some(_)) => Err(
                "--expires applies to --form get only; a POST proof lives 15 minutes at the verifier"
                    .to_owned(),
            ),
            (Form::Get, expires) => Ok(expires.map_or_else(SigningForm::presigned_get, |s| {
                SigningForm::PresignedGet {
                    expires_in: Duration::from_secs(s),
                }
            })),
        }
    }
}

#[derive(Args)]
struct TokenArgs {
    /// Bind the proof to this audience (x-iam-join-audience) [default: $IAM_JOIN_AUDIENCE]
    #[arg(long, value_name = "AUDIENCE", conflicts_with_all = ["challenge", "k8s"])]
    audience: Option<String>,

    /// Bind the proof to this single-use challenge from the verifier (x-teleport-challenge).
    #[arg(long, value_name = "CHALLENGE", conflicts_with = "k8s")]
    challenge: Option<String>,

    /// Print a `k8s-aws-v1.` token for --cluster-id instead (see the k8s-token command).
    #[arg(long, requires = "cluster_id", conflicts_with_all = ["form", "expires"])]
    k8s: bool,

    /// EKS cluster name / ID signed into x-k8s-aws-id (with --k8s).
    #[arg(long, value_name = "ID", requires = "k8s")]
    cluster_id: Option<String>,

    #[command(flatten)]
    form: FormArgs,

    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Args)]
struct K8sTokenArgs {
    /// EKS cluster name / ID signed into x-k8s-aws-id.
    #[arg(long, value_name = "ID")]
    cluster_id: String,

    #[command(flatten)]
    aws: AwsArgs,
}

#[derive(Args)]
struct WhoamiArgs {
    /// Base URL of the verifier, e.g. https://teleport.example.com [default: from --config]
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,

    /// The verifier's path prefix.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_PREFIX)]
    prefix: String,

    /// Join token to match (sent as X-IAM-Join-Token) [default: from --config, else the
    /// verifier's default token]
    #[arg(long, value_name = "NAME")]
    token: Option<String>,

    /// Fetch a challenge from the verifier and bind the proof to it (single-use).
    #[arg(long, conflicts_with = "audience")]
    challenge: bool,

    /// Bind the proof to this audience [default: $IAM_JOIN_AUDIENCE]
    #[arg(long, value_name = "AUDIENCE")]
    audience: Option<String>,

    /// Print the verifier's JSON answer instead of `key: value` lines.
    #[arg(long)]
    json: bool,

    /// Seconds to wait for each answer from the verifier.
    #[arg(long, value_name = "SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,

    /// Allow plain http:// to a host that is not loopback (anyone on the path can replay the
    /// proof until it expires).
    #[arg(long)]
    allow_http: bool,

    #[command(flatten)]
    form: FormArgs,

    #[command(flatten)]
    aws: AwsArgs,
}

/// What went wrong, for the one line printed on stderr.
enum Failure {
    Client(ClientError),
    Usage(String),
    Output(std::io::Error),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match &cli.command {
        Command::Token(args) => token(args).await,
        Command::K8sToken(args) => k8s(&args.aws, &args.cluster_id).await,
        Command::Whoami(args) => whoami(args, cli.config.as_deref()).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Client(e)) => {
            eprintln!("iam-join: error: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(Failure::Output(e)) => {
            eprintln!("iam-join: error: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Usage(message)) => {
            eprintln!("iam-join: error: {message}\n\nFor more information, try '--help'.");
            ExitCode::from(2)
        }
    }
}

fn quiet_signer() -> tracing_subscriber::filter::Directive {
    "aws_sigv4=info"
        .parse()
        .unwrap_or_else(|_| unreachable!("a valid directive"))
}

fn init_logging(verbose: bool) {
    let default = if verbose {
        "info,iam_join=debug,iam_join_client=debug"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // aws-sigv4 logs header values and the canonical query (session token, challenge) at
    // debug/trace: never let it, whatever RUST_LOG says.
    let filter = filter.add_directive(quiet_signer());
    // A second init (never happens here) would only fail; logging is best effort.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbose)
        .try_init();
}

async fn token(args: &TokenArgs) -> Result<(), Failure> {
    if args.k8s {
        let cluster_id = args.cluster_id.as_deref().unwrap_or_default();
        return k8s(&args.aws, cluster_id).await;
    }
    let binding = match (&args.audience, &args.challenge) {
        (Some(a), _) => Binding::Audience(a.clone()),
        (None, Some(c)) => Binding::Challenge(c.clone()),
        (None, None) => Binding::Audience(audience_from_env()?),
    };
    let form = args.form.signing_form().map_err(Failure::Usage)?;
    let (creds, endpoint) = credentials_and_endpoint(&args.aws).await?;
    let token = ProofBuilder::new(endpoint, binding)
        .form(form)
        .build(&creds)?;
    print_line(&token)
}

async fn k8s(aws: &AwsArgs, cluster_id: &str) -> Result<(), Failure> {
    let (creds, endpoint) = credentials_and_endpoint(aws).await?;
    let token = k8s_token_for_endpoint(&creds, &endpoint, cluster_id, SystemTime::now())?;
    print_line(&token)
}

async fn whoami(args: &WhoamiArgs, config: Option<&std::path::Path>) -> Result<(), Failure> {
    let teleport = config.map(TeleportAgentConfig::from_path).transpose()?;
    if let Some(cfg) = &teleport {
        tracing::info!(
            token = %cfg.token_name,
            proxy = %cfg.proxy_url,
            from = cfg.address_key,
            "read Teleport config"
        );
    }
    let proxy = args
        .proxy
        .clone()
        .or_else(|| teleport.as_ref().map(|c| c.proxy_url.clone()))
        .ok_or_else(|| {
            Failure::Usage(
                "no verifier: pass --proxy https://<host> or --config /etc/teleport.yaml"
                    .to_owned(),
            )
        })?;
    let token_name = args
        .token
        .clone()
        .or_else(|| teleport.as_ref().map(|c| c.token_name.clone()));
    let audience = if args.challenge {
        None
    } else {
        Some(match &args.audience {
            Some(a) => a.clone(),
            None => audience_from_env()?,
        })
    };
    let form = args.form.signing_form().map_err(Failure::Usage)?;
    let verifier = VerifierClient::new(&proxy)?
        .with_prefix(&args.prefix)?
        .timeout(Duration::from_secs(args.timeout))
        .allow_plain_http(args.allow_http);

    // Credentials first: the challenge's clock starts when it is issued.
    let (creds, endpoint) = credentials_and_endpoint(&args.aws).await?;
    let binding = match audience {
        Some(a) => Binding::Audience(a),
        None => Binding::for_challenge(&verifier.fetch_challenge().await?)?,
    };
    let proof = ProofBuilder::new(endpoint, binding)
        .form(form)
        .build(&creds)?;
    let me = verifier.whoami(&proof, token_name.as_deref()).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&me.raw).unwrap_or_default();
        print_line(&text)
    } else {
        print_line(&human(&me))
    }
}

fn audience_from_env() -> Result<String, Failure> {
    match std::env::var(AUDIENCE_ENV) {
        Ok(a) if !a.is_empty() => Ok(a),
        _ => Err(Failure::Usage(format!(
            "no binding: pass --audience <AUDIENCE> (the verifier's configured audience), \
             --challenge, or set {AUDIENCE_ENV}"
        ))),
    }
}

async fn credentials_and_endpoint(
    aws: &AwsArgs,
) -> Result<(aws_credential_types::Credentials, StsEndpoint), Failure> {
    let (creds, loaded_region) = load_credentials(aws.profile.as_deref()).await?;
    let region = region_or_default(aws.region.as_deref(), loaded_region.as_deref());
    let endpoint = sts_endpoint(&region, aws.fips)?;
    tracing::info!(endpoint = %endpoint, "signing for STS endpoint");
    Ok((creds, endpoint))
}

/// `key: value` lines, well-known fields first, in the verifier's words.
fn human(me: &WhoAmI) -> String {
    const ORDER: &[&str] = &[
        "account",
        "arn",
        "user_id",
        "principal",
        "region",
        "token",
        "roles",
        "binding",
        "expires_at",
    ];
    let Some(fields) = me.raw.as_object() else {
        return format!("account: {}\narn: {}", me.account, me.arn);
    };
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort_by_key(|k| ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()));
    let width = keys.iter().map(|k| k.len()).max().unwrap_or(0) + 1;
    keys.iter()
        .map(|k| format!("{:<width$} {}", format!("{k}:"), show(&fields[k.as_str()])))
        .collect::<Vec<_>>()
        .join("\n")
}

fn show(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.iter().all(|i| i.is_string()) => items
            .iter()
            .filter_map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn print_line(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(Failure::Output)
}
