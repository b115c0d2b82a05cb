//! The custom-access-token hook: a SQL function that adds claims, or fails the sign-in clearly.

use reqwest::Method;
use serde_json::json;

use crate::common::Api;

const HOOK: &str = "
create function public.access_hook(event jsonb) returns jsonb
language plpgsql as $$
declare
  claims jsonb := event -> 'claims';
begin
  if claims ->> 'email' = 'suspended@example.com' then
    return jsonb_build_object('error',
      jsonb_build_object('http_code', 403, 'message', 'Organization suspended'));
  end if;
  if claims ->> 'email' = 'broken@example.com' then
    raise exception 'no organization for this user';
  end if;
  claims := jsonb_set(claims, '{organization_id}', to_jsonb('org-1'::text));
  claims := jsonb_set(claims, '{org_role}', to_jsonb(event ->> 'authentication_method'));
  return jsonb_build_object('claims', claims);
end
$$;";

#[tokio::test]
async fn the_hook_adds_claims_and_its_errors_fail_sign_in() {
    let api = Api::start_with(|config| {
        config.auth.custom_access_token_hook =
            Some("pg-functions://postgres/public/access_hook".into());
    })
    .await;
    api.db.execute(HOOK).await;
    let verifier = api.server.state.gatekeeper.verifier().clone();

    let session = api.sign_up("member@example.com", "password-1").await;
    let claims = verifier
        .verify(session["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims["organization_id"], "org-1");
    assert_eq!(claims["org_role"], "password");
    // Refreshed tokens go through the hook too.
    let refreshed = api
        .refresh(session["refresh_token"].as_str().unwrap())
        .await;
    let claims = verifier
        .verify(refreshed.body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims["organization_id"], "org-1");
    assert_eq!(claims["org_role"], "token_refresh");

    let declined = api
        .post(
            "/auth/v1/signup",
            json!({"email": "suspended@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(declined.status, 403);
    assert_eq!(declined.body["message"], "Organization suspended");

    let broken = api
        .post(
            "/auth/v1/signup",
            json!({"email": "broken@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(broken.status, 500);
    assert_eq!(broken.body["code"], "unexpected_failure");
    let message = broken.body["message"].as_str().unwrap();
    assert!(message.contains("Error running hook URI"), "{message}");
    assert!(
        message.contains("no organization for this user"),
        "{message}"
    );
    // The failed sign-up left nothing behind.
    let users = api
        .scalar_i64("select count(*) from auth.users where email = 'broken@example.com'")
        .await;
    assert_eq!(users, 0);
    let settings = api.call(Method::GET, "/auth/v1/settings", None, None).await;
    assert_eq!(settings.status, 200);
}

#[tokio::test]
async fn the_domain_hook_adds_the_organization_and_role_of_an_active_member() {
    let api = Api::start_with(|config| {
        config.auth.custom_access_token_hook = Some("app.custom_access_token_hook".into());
    })
    .await;
    let verifier = api.server.state.gatekeeper.verifier().clone();

    // Not a member yet: the hook runs and adds nothing.
    let session = api.sign_up("dispatcher@example.com", "password-1").await;
    let claims = verifier
        .verify(session["access_token"].as_str().unwrap())
        .unwrap();
    assert!(claims.get("organization_id").is_none(), "{claims:?}");

    let user_id = session["user"]["id"].as_str().unwrap().to_owned();
    let admin = api.db.admin().await;
    let org: String = admin
        .query_one(
            "insert into public.organizations (name, slug) values ('North Gas', 'north-gas') \
             returning id::text",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    admin
        .execute(
            "insert into public.profiles (user_id, organization_id, role) \
             values ($1::text::uuid, $2::text::uuid, 'driver')",
            &[&user_id, &org],
        )
        .await
        .unwrap();

    let signed_in = api
        .post(
            "/auth/v1/token?grant_type=password",
            json!({"email": "dispatcher@example.com", "password": "password-1"}),
        )
        .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let claims = verifier
        .verify(signed_in.body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims["organization_id"], org.as_str());
    assert_eq!(claims["org_role"], "driver");
    assert_eq!(claims["role"], "authenticated");
}
