//! Helpers: a started server with a small HTTP client speaking to `/auth/v1` as supabase-js.

use manifold_config::Config;
use manifold_testkit::{TestDb, TestServer};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// A test database and a server on it.
pub(crate) struct Api {
    pub(crate) db: TestDb,
    pub(crate) server: TestServer,
    http: reqwest::Client,
}

/// One answer: status, headers, JSON body (Null when empty).
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Value,
}

impl Api {
    pub(crate) async fn start() -> Api {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(adjust: impl FnOnce(&mut Config)) -> Api {
        let db = TestDb::create().await;
        let server = TestServer::start_with(&db, adjust).await;
        Api {
            db,
            server,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) fn anon_key(&self) -> String {
        self.server.keys.anon_key.clone()
    }

    pub(crate) fn service_key(&self) -> String {
        self.server.keys.service_role_key.clone()
    }

    /// A request with the anon apikey, the 2024-01-01 API version and `bearer` (default: the
    /// anon key), as auth-js sends.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        bearer: Option<&str>,
    ) -> Reply {
        let anon = self.anon_key();
        let mut request = self
            .http
            .request(method, self.server.endpoint(path))
            .header("apikey", &anon)
            .header("x-supabase-api-version", "2024-01-01")
            .header(
                "authorization",
                format!("Bearer {}", bearer.unwrap_or(&anon)),
            );
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Like [`Api::call`], with `body` sent as raw `application/json` text.
    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: &str,
        bearer: Option<&str>,
    ) -> Reply {
        let anon = self.anon_key();
        let response = self
            .http
            .request(method, self.server.endpoint(path))
            .header("apikey", &anon)
            .header("x-supabase-api-version", "2024-01-01")
            .header(
                "authorization",
                format!("Bearer {}", bearer.unwrap_or(&anon)),
            )
            .header("content-type", "application/json;charset=UTF-8")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body), None).await
    }

    /// Signs up (autoconfirm is on without SMTP) and returns the session.
    pub(crate) async fn sign_up(&self, email: &str, password: &str) -> Value {
        let reply = self
            .post(
                "/auth/v1/signup",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body["access_token"].is_string(), "{}", reply.body);
        reply.body
    }

    pub(crate) async fn refresh(&self, token: &str) -> Reply {
        self.post(
            "/auth/v1/token?grant_type=refresh_token",
            json!({"refresh_token": token}),
        )
        .await
    }

    /// A call with the service-role key as bearer (the admin API).
    pub(crate) async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let service = self.service_key();
        self.call(method, path, body, Some(&service)).await
    }

    /// The dev mailbox's messages to `email`, newest first.
    pub(crate) async fn mailbox(&self, email: &str) -> Vec<Value> {
        let reply = self
            .admin(
                Method::GET,
                &format!("/auth/v1/admin/mailbox?email={email}"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body.as_array().unwrap().clone()
    }

    /// Follows an emailed `/verify` link as a browser would (the test server's port is not in
    /// the link, so only its path is kept) and returns the 303's `Location`.
    pub(crate) async fn follow_link(&self, link: &str) -> reqwest::Url {
        let path = &link[link.find("/auth/v1/verify").unwrap()..];
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(self.server.endpoint(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303);
        reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
    }

    /// A value from the database as the superuser.
    pub(crate) async fn scalar_text(&self, sql: &str) -> Option<String> {
        self.db
            .admin()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }

    /// A value from the database as the superuser.
    pub(crate) async fn scalar_i64(&self, sql: &str) -> i64 {
        self.db
            .admin()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }
}
