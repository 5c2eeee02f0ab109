//! Authentication and authorisation: client certificates (CN = user, O = groups) next to bearer
//! tokens, and RBAC enforcement (`SimBuilder::rbac`) with kube-apiserver's 403 messages.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, WatchParams};
use kube::{Api, Client};
use kube_sim::{Sim, SimBuilder};

async fn start(rbac: bool) -> Sim {
    tokio::time::timeout(
        Duration::from_secs(60),
        SimBuilder::new().clusters(1).rbac(rbac).start(),
    )
    .await
    .expect("starts in time")
    .expect("starts")
}

/// Server-side applies `object` (apiVersion, kind, metadata) as the admin.
async fn apply(admin: &Client, object: serde_json::Value) {
    let object: kube::api::DynamicObject = serde_json::from_value(object).expect("object");
    let types = object.types.clone().expect("types");
    let gvk = kube::api::GroupVersionKind::try_from(&types).expect("gvk");
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &gvk,
        &format!("{}s", types.kind.to_lowercase()),
    );
    let api: Api<kube::api::DynamicObject> = match &object.metadata.namespace {
        Some(ns) => Api::namespaced_with(admin.clone(), ns, &resource),
        None => Api::all_with(admin.clone(), &resource),
    };
    let name = object.metadata.name.clone().expect("name");
    api.patch(
        &name,
        &PatchParams::apply("auth-test").force(),
        &Patch::Apply(&object),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {} {name}: {e}", types.kind));
}

async fn namespace(admin: &Client, name: &str) {
    apply(
        admin,
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    .await;
}

/// The API error of a call that must fail: (code, message).
fn refusal<T>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message.clone()),
        Err(other) => panic!("expected an API error, got {other}"),
        Ok(_) => panic!("expected an API error, got a success"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_authenticates_and_one_from_another_ca_is_refused() {
    let sim = start(false).await;
    let certificate = sim.issue_client_certificate("jane", &["developers"]).expect("certificate");
    let jane = sim.client_with_certificate(0, &certificate).await.expect("client");
    Api::<Namespace>::all(jane)
        .list(&ListParams::default())
        .await
        .expect("a certificate signed by the cluster CA authenticates");

    // Same server and CA, a certificate of another simulator's CA: 401, not a TLS failure.
    let other = start(false).await;
    let foreign = other.issue_client_certificate("jane", &["developers"]).expect("certificate");
    let yaml = other
        .client_certificate_kubeconfig_yaml(0, &foreign)
        .expect("kubeconfig")
        .replace(&other.url(0), &sim.url(0))
        .replace(&base64_of(other.ca_pem()), &base64_of(sim.ca_pem()));
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    let impostor = Client::try_from(config).expect("client");
    let (code, message) =
        refusal(Api::<Namespace>::all(impostor.clone()).list(&ListParams::default()).await);
    assert_eq!((code, message.as_str()), (401, "Unauthorized"));
    let (code, _) = refusal(impostor.apiserver_version().await);
    assert_eq!(
        code, 401,
        "a failed certificate is not anonymous, even for /version"
    );
    // With a valid token too, the token authenticates, as with kube-apiserver.
    let with_token = yaml.replace(
        "    client-key-data:",
        &format!("    token: {}\n    client-key-data:", sim.token(0)),
    );
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&with_token).expect("kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    Api::<Namespace>::all(Client::try_from(config).expect("client"))
        .list(&ListParams::default())
        .await
        .expect("the token authenticates");
    other.shutdown().await;
    sim.shutdown().await;
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_allows_what_bindings_grant_and_answers_403_like_kube_apiserver() {
    let sim = start(true).await;
    assert!(sim.enforces_rbac());
    let admin = sim.client(0).await.expect("admin");
    namespace(&admin, "team").await;
    namespace(&admin, "other").await;
    let certificate = sim.issue_client_certificate("jane", &["developers"]).expect("certificate");
    let jane = sim.client_with_certificate(0, &certificate).await.expect("client");
    let team_pods = Api::<Pod>::namespaced(jane.clone(), "team");

    // Nothing bound: refused, with the user name from the certificate's CN.
    let (code, message) = refusal(team_pods.list(&ListParams::default()).await);
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"team\""
    );

    // A Role in "team" bound to the certificate's group (its O).
    apply(
        &admin,
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": "team"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                      {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mine"],
                       "verbs": ["get", "watch"]}]
        }),
    )
    .await;
    apply(
        &admin,
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "developers-read-pods", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"kind": "Group", "name": "developers", "apiGroup": "rbac.authorization.k8s.io"}]
        }),
    )
    .await;
    team_pods.list(&ListParams::default()).await.expect("the Role allows listing pods in team");
    let (code, message) =
        refusal(Api::<Pod>::namespaced(jane.clone(), "other").list(&ListParams::default()).await);
    assert_eq!(code, 403);
    assert!(message.ends_with("in the namespace \"other\""), "{message}");
    let (_, message) = refusal(Api::<Pod>::all(jane.clone()).list(&ListParams::default()).await);
    assert_eq!(
        message,
        "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
    );
    let pod = serde_json::from_value::<Pod>(serde_json::json!({
        "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}
    }))
    .expect("pod");
    let (code, message) = refusal(team_pods.create(&Default::default(), &pod).await);
    assert_eq!(code, 403);
    assert!(
        message.starts_with("pods is forbidden: User \"jane\" cannot create"),
        "{message}"
    );

    // resourceNames: one ConfigMap by name, also watched by a metadata.name field selector.
    for name in ["mine", "theirs"] {
        apply(
            &admin,
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "team"}, "data": {"a": "1"}}),
        )
        .await;
    }
    let maps = Api::<ConfigMap>::namespaced(jane.clone(), "team");
    maps.get("mine").await.expect("the named ConfigMap");
    let (_, message) = refusal(maps.get("theirs").await);
    assert_eq!(
        message,
        "configmaps \"theirs\" is forbidden: User \"jane\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"team\""
    );
    let _named_watch = maps
        .watch(&WatchParams::default().fields("metadata.name=mine"), "0")
        .await
        .expect("a watch of the named ConfigMap by field selector");
    let (code, _) = refusal(maps.watch(&WatchParams::default(), "0").await);
    assert_eq!(code, 403, "a watch of every ConfigMap is refused");

    // A namespace is read through a RoleBinding in that namespace.
    apply(
        &admin,
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "namespace-reader"},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]
        }),
    )
    .await;
    apply(
        &admin,
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "jane-reads-team", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "namespace-reader"},
            "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]
        }),
    )
    .await;
    let namespaces = Api::<Namespace>::all(jane.clone());
    namespaces.get("team").await.expect("namespace team");
    let (_, message) = refusal(namespaces.get("other").await);
    assert_eq!(
        message,
        "namespaces \"other\" is forbidden: User \"jane\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"other\""
    );

    // A binding to a role that does not exist says so.
    apply(
        &admin,
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "jane-ghost"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ghost"},
            "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]
        }),
    )
    .await;
    let (_, message) =
        refusal(Api::<Secret>::namespaced(jane.clone(), "team").list(&ListParams::default()).await);
    assert!(
        message.ends_with(": RBAC: clusterrole.rbac.authorization.k8s.io \"ghost\" not found"),
        "{message}"
    );

    // The admin is unrestricted; the refusals were counted.
    Api::<Secret>::all(admin.clone())
        .list(&ListParams::default())
        .await
        .expect("the admin lists every Secret");
    let refused = sim.refused_requests(0).expect("refused");
    assert!(
        refused.keys().any(|m| m.contains("User \"jane\" cannot list resource \"pods\"")),
        "{refused:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_are_authorised_by_name_and_by_their_groups() {
    let sim = start(true).await;
    let admin = sim.client(0).await.expect("admin");
    namespace(&admin, "team").await;
    namespace(&admin, "other").await;
    apply(
        &admin,
        serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "bot", "namespace": "team"}}),
    )
    .await;
    apply(
        &admin,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "type": "kubernetes.io/service-account-token",
            "metadata": {"name": "bot-token", "namespace": "team",
                         "annotations": {"kubernetes.io/service-account.name": "bot"}}}),
    )
    .await;
    let secrets = Api::<Secret>::namespaced(admin.clone(), "team");
    let mut token = None;
    for _ in 0..100 {
        token = secrets
            .get("bot-token")
            .await
            .ok()
            .and_then(|s| s.data?.get("token").cloned())
            .and_then(|t| String::from_utf8(t.0).ok());
        if token.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = token.expect("the token controller fills the Secret");
    let bot = sim.client_with_token(0, &token).await.expect("client");
    let other_maps = Api::<ConfigMap>::namespaced(bot.clone(), "other");
    let (_, message) = refusal(other_maps.list(&ListParams::default()).await);
    assert_eq!(
        message,
        "configmaps is forbidden: User \"system:serviceaccount:team:bot\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"other\""
    );

    // Every service account of "team" (group system:serviceaccounts:team), cluster-wide.
    apply(
        &admin,
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "configmap-lister"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]
        }),
    )
    .await;
    apply(
        &admin,
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "team-lists-configmaps"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "configmap-lister"},
            "subjects": [{"kind": "Group", "name": "system:serviceaccounts:team", "apiGroup": "rbac.authorization.k8s.io"}]
        }),
    )
    .await;
    other_maps
        .list(&ListParams::default())
        .await
        .expect("the group's ClusterRoleBinding applies in every namespace");

    // The service account by name, in a RoleBinding whose subject omits the namespace.
    apply(
        &admin,
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "status-writer", "namespace": "team"},
            "rules": [{"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["*"]}]
        }),
    )
    .await;
    apply(
        &admin,
        serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "bot-writes-status", "namespace": "team"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "status-writer"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot"}]
        }),
    )
    .await;
    let status_patch = serde_json::json!({"status": {"phase": "Active"}});
    let bot_namespaces = Api::<Namespace>::all(bot.clone());
    bot_namespaces
        .patch_status(
            "team",
            &PatchParams::default(),
            &Patch::Merge(&status_patch),
        )
        .await
        .expect("*/status allows namespaces/status in team");
    let (_, message) = refusal(
        bot_namespaces
            .patch(
                "team",
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({})),
            )
            .await,
    );
    assert_eq!(
        message,
        "namespaces \"team\" is forbidden: User \"system:serviceaccount:team:bot\" cannot patch resource \"namespaces\" in API group \"\" in the namespace \"team\""
    );

    // Deleting the service account invalidates its token.
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(admin.clone(), "team")
        .delete("bot", &Default::default())
        .await
        .expect("delete the service account");
    let (code, _) = refusal(other_maps.list(&ListParams::default()).await);
    assert_eq!(code, 401);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_the_forbidden_message_of_a_client_certificate_user() {
    if std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        eprintln!("skipped: kubectl is not installed");
        return;
    }
    let sim = start(true).await;
    let certificate = sim.issue_client_certificate("jane", &["developers"]).expect("certificate");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        sim.client_certificate_kubeconfig_yaml(0, &certificate).expect("kubeconfig"),
    )
    .expect("write");
    let output = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["get", "configmaps", "-n", "default"])
        .output()
        .await
        .expect("kubectl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(
            "Error from server (Forbidden): configmaps is forbidden: User \"jane\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
        ),
        "{stderr}"
    );
    sim.shutdown().await;
}
