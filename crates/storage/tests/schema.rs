//! The `storage` schema as Supabase policies and seed files expect it: helper functions,
//! generated `path_tokens`, the delete guard, and the org-files policies' claim helpers.

use manifold_testkit::TestDb;
use serde_json::json;

#[tokio::test]
async fn helper_functions_behave_as_on_supabase() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    let row = admin
        .query_one(
            "select storage.foldername('org/deliveries/7/sig.png'), \
                    storage.filename('org/deliveries/7/sig.png'), \
                    storage.extension('org/deliveries/7/sig.tar.gz'), \
                    storage.extension('README'), \
                    storage.foldername('top.png')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Vec<String>>(0), ["org", "deliveries", "7"]);
    assert_eq!(row.get::<_, String>(1), "sig.png");
    assert_eq!(row.get::<_, String>(2), "gz");
    assert_eq!(row.get::<_, String>(3), "README");
    assert!(row.get::<_, Vec<String>>(4).is_empty());
}

#[tokio::test]
async fn path_tokens_are_generated_and_deletes_need_the_api_setting() {
    let db = TestDb::create().await;
    db.execute(
        "insert into storage.buckets (id, name) values ('b', 'b'); \
         insert into storage.objects (bucket_id, name, version) values ('b', 'x/y/z.txt', 'v1');",
    )
    .await;
    let admin = db.admin().await;
    let tokens: Vec<String> = admin
        .query_one(
            "select path_tokens from storage.objects where name = 'x/y/z.txt'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tokens, ["x", "y", "z.txt"]);

    // Deleting rows in SQL would orphan their files: refused without the API's setting.
    let error = admin
        .execute("delete from storage.objects where bucket_id = 'b'", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code().unwrap().code(), "42501");
    let error = admin
        .execute("delete from storage.buckets where id = 'b'", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code().unwrap().code(), "42501");
    let deleted = admin
        .query_one(
            "with allow as (select set_config('storage.allow_delete_query', 'true', false)) \
             select count(*) from allow",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(deleted.get::<_, i64>(0), 1);
    assert_eq!(
        admin
            .execute("delete from storage.objects where bucket_id = 'b'", &[])
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn org_claims_come_from_the_hook_or_app_metadata_never_user_metadata() {
    let db = TestDb::create().await;
    let admin = db.admin().await;
    let claims_of = |claims: serde_json::Value| claims.to_string();
    let query = "select set_config('request.jwt.claims', $1, false), \
                        storage.jwt_org_id(), storage.jwt_org_role()";
    let cases = [
        (
            json!({"organization_id": "o1", "org_role": "driver"}),
            Some("o1"),
            Some("driver"),
        ),
        (
            json!({"app_metadata": {"organization_id": "o2", "org_role": "admin"}}),
            Some("o2"),
            Some("admin"),
        ),
        (
            json!({"organization_id": "hook", "app_metadata": {"organization_id": "meta"}}),
            Some("hook"),
            None,
        ),
        (
            json!({"user_metadata": {"organization_id": "o3", "org_role": "owner"}}),
            None,
            None,
        ),
    ];
    for (claims, org, role) in cases {
        let row = admin
            .query_one(query, &[&claims_of(claims.clone())])
            .await
            .unwrap();
        assert_eq!(row.get::<_, Option<String>>(1).as_deref(), org, "{claims}");
        assert_eq!(row.get::<_, Option<String>>(2).as_deref(), role, "{claims}");
    }
}

#[tokio::test]
async fn the_default_org_files_bucket_is_private() {
    let db = TestDb::create().await;
    let row = db
        .admin()
        .await
        .query_one(
            "select public from storage.buckets where id = 'org-files'",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
}

/// The organization and role the org-files policies see for `claims`, evaluated as the
/// `authenticated` role inside a rolled-back transaction.
async fn org_and_role(
    client: &mut tokio_postgres::Client,
    claims: &serde_json::Value,
) -> (Option<String>, Option<String>) {
    let tx = client.transaction().await.unwrap();
    tx.execute("set local role authenticated", &[])
        .await
        .unwrap();
    tx.execute(
        "select set_config('request.jwt.claims', $1, true)",
        &[&claims.to_string()],
    )
    .await
    .unwrap();
    let row = tx
        .query_one("select storage.jwt_org_id(), storage.jwt_org_role()", &[])
        .await
        .unwrap();
    let found = (row.get(0), row.get(1));
    tx.rollback().await.unwrap();
    found
}

#[tokio::test]
async fn the_active_profile_decides_the_organization_before_any_claim() {
    const ORG: &str = "a1000000-0000-4000-8000-000000000000";
    const USER: &str = "a1000000-0000-4000-8000-000000000001";
    let db = TestDb::create().await;
    db.execute(
        "insert into public.organizations (id, name, slug, subscription_status) \
           values ('a1000000-0000-4000-8000-000000000000', 'Org A', 'org-a', 'active'); \
         insert into auth.users (id, aud, role, email) values \
           ('a1000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'd@a.test'); \
         insert into public.profiles (user_id, organization_id, role) values \
           ('a1000000-0000-4000-8000-000000000001', 'a1000000-0000-4000-8000-000000000000', 'driver');",
    )
    .await;
    let mut client = db.admin().await;
    let member = |claims: serde_json::Value| {
        let mut claims = claims;
        claims["sub"] = json!(USER);
        claims["role"] = json!("authenticated");
        claims
    };

    // A profile member: the profile wins over claims naming another organization or role.
    let forged = member(json!({"organization_id": "other-org", "org_role": "admin"}));
    assert_eq!(
        org_and_role(&mut client, &forged).await,
        (Some(ORG.to_owned()), Some("driver".to_owned()))
    );
    assert_eq!(
        org_and_role(&mut client, &member(json!({}))).await,
        (Some(ORG.to_owned()), Some("driver".to_owned()))
    );

    // Deactivated: nothing, whatever the token still says.
    db.execute(
        "update public.profiles set is_active = false \
         where user_id = 'a1000000-0000-4000-8000-000000000001'",
    )
    .await;
    assert_eq!(org_and_role(&mut client, &forged).await, (None, None));

    // No profile (another uuid, or a subject that is not a uuid): the claims decide, and a
    // non-uuid subject is not an error.
    for sub in ["a1000000-0000-4000-8000-0000000000ff", "service-tool-7"] {
        let claims = json!({"sub": sub, "role": "authenticated",
                            "app_metadata": {"organization_id": "o9", "org_role": "plant"}});
        assert_eq!(
            org_and_role(&mut client, &claims).await,
            (Some("o9".to_owned()), Some("plant".to_owned())),
            "{sub}"
        );
    }
}
