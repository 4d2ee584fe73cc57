//! AWS Bedrock: the Converse API (OpenAI chat completions are translated to it), every
//! request signed with SigV4 ([`sigv4`]) over its final path, host and body.

pub mod sigv4;

use super::{is_ident, percent_encode, Adapter, Headers, Outgoing};
use crate::api::errors::GatewayError;
use crate::api::{Api, Endpoint};
use crate::config_error::{err, ConfigError};
use crate::providers::config::{Provider, ProviderConfig};

pub struct Bedrock;

impl Adapter for Bedrock {
    fn api(&self) -> Api {
        Api::Bedrock
    }

    fn endpoint(&self, client: Endpoint) -> Option<Endpoint> {
        (client == Endpoint::ChatCompletions).then_some(Endpoint::ChatCompletions)
    }

    fn options(&self) -> &'static [&'static str] {
        &["aws_credentials_env", "region"]
    }

    fn check_options(
        &self,
        p: &ProviderConfig,
        at: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        if !p.region.as_deref().is_some_and(is_ident) {
            return Err(err(
                at("region"),
                "required for bedrock: an AWS region such as us-east-1",
            ));
        }
        Ok(())
    }

    fn default_path_prefix(&self) -> &'static str {
        ""
    }

    fn default_host(&self, p: &Provider) -> Option<String> {
        Some(format!("bedrock-runtime.{}.amazonaws.com", p.region))
    }

    fn path(
        &self,
        p: &Provider,
        _endpoint: Endpoint,
        model: &str,
        _query: &str,
        stream: bool,
    ) -> String {
        let action = if stream {
            "converse-stream"
        } else {
            "converse"
        };
        format!("{}/model/{}/{action}", p.path_prefix, percent_encode(model))
    }

    /// SigV4 over the final request: nothing signed may change after this.
    fn authenticate(&self, p: &Provider, req: &Outgoing<'_>) -> Result<Headers, GatewayError> {
        let Some(aws) = &p.aws else {
            return Err(GatewayError::provider_key_missing(
                &p.name,
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the names in aws_credentials_env)",
            ));
        };
        let (path, query) = req.path.split_once('?').unwrap_or((req.path, ""));
        let creds = sigv4::Credentials {
            access_key_id: aws.access_key_id.clone(),
            secret_access_key: aws.secret_access_key.clone(),
            session_token: aws.session_token.clone(),
        };
        let signed = sigv4::sign(
            "POST",
            req.authority,
            path,
            query,
            &[("content-type", "application/json")],
            &req.body(),
            &p.region,
            "bedrock",
            &creds,
            &sigv4::amz_date((req.now_s)()),
        );
        let mut out = Headers::with_capacity(signed.headers.len() + 1);
        out.push(("content-type".into(), "application/json".into()));
        out.extend(signed.headers.into_iter().map(|(k, v)| (k.into(), v)));
        Ok(out)
    }
}
