//! Limits per client IP (governor token buckets) and the keyed per-email limit: 429
//! `over_request_rate_limit`.

use serde_json::json;

use crate::common::Api;

#[tokio::test]
async fn token_endpoint_is_limited_per_ip_and_mail_endpoints_per_email() {
    let api = Api::start_with(|config| {
        config.auth.rate_limit.token_per_5min = 3;
        config.auth.rate_limit.email_requests_per_5min = 2;
        config.auth.rate_limit.ip_header = Some("x-client-ip".into());
    })
    .await;
    let http = reqwest::Client::new();
    let sign_in = |ip: &'static str| {
        let request = http
            .post(api.server.endpoint("/auth/v1/token?grant_type=password"))
            .header("apikey", api.anon_key())
            .header("x-supabase-api-version", "2024-01-01")
            .header("x-client-ip", ip)
            .json(&json!({"email": "nobody@example.com", "password": "wrong-password"}));
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let echoed = response.headers().get("x-supabase-api-version").cloned();
            (
                status,
                echoed,
                response.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    for _ in 0..3 {
        let (status, _, body) = sign_in("10.0.0.1").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_credentials"))
        );
    }
    let (status, echoed, body) = sign_in("10.0.0.1").await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "over_request_rate_limit");
    assert_eq!(body["message"], "Request rate limit reached");
    assert_eq!(echoed.unwrap(), "2024-01-01");
    // Another client has its own bucket.
    assert_eq!(sign_in("10.0.0.2").await.0, 400);

    // Per email address on mail-sending endpoints (unknown addresses send nothing but count),
    // whichever IP the requests come from.
    let recover = |email: &'static str, ip: &'static str| {
        let request = http
            .post(api.server.endpoint("/auth/v1/recover"))
            .header("apikey", api.anon_key())
            .header("x-supabase-api-version", "2024-01-01")
            .header("x-client-ip", ip)
            .json(&json!({"email": email}));
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    assert_eq!(
        recover("probe@example.com", "10.0.1.1").await,
        (200, json!({}))
    );
    assert_eq!(
        recover("probe@example.com", "10.0.1.2").await,
        (200, json!({}))
    );
    let (status, body) = recover("probe@example.com", "10.0.1.3").await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "over_request_rate_limit");
    assert_eq!(recover("other@example.com", "10.0.1.4").await.0, 200);
}
