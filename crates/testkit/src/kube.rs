//! [`FakeKube`]: a fake Kubernetes API server on 127.0.0.1 for the tests of
//! hifi's Kubernetes runtime — no API server can run on these machines.
//!
//! It answers the endpoints hifi uses the way a real one does, with real
//! Kubernetes JSON, so the `kube` client is exercised for real: server-side
//! apply (`PATCH` with `application/apply-patch+yaml` and a field manager;
//! 201 on create, 200 on update, `metadata.generation` bumped when the spec
//! changes), get, list with label selectors, delete, watch (newline-
//! delimited JSON events from a `resourceVersion`, ended at
//! `timeoutSeconds`), `Status` bodies for refusals (403 Forbidden for RBAC
//! and for quotas, 404 for a missing object or namespace, 415 for a patch
//! that is not an apply), and the pod and service proxy subresources.
//!
//! It also plays the controller manager and the kubelet for Deployments:
//! after a short delay a Deployment gets pods and a status according to
//! its [`Behaviour`] (available; an image that cannot be pulled; never
//! ready; pods a quota refuses; a progress deadline exceeded; a crash loop).
//! Services get cluster IPs from 127.1.0.0/16, so nothing that mistakes one
//! for a reachable address ever leaves the machine.
//!
//! Every request is counted ([`FakeKube::calls`]) for the API-call figures
//! in `bench/RESULTS.md`.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// How a Deployment fares once applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Its pods start and become ready (the default).
    Available,
    /// Its pods cannot pull the image (`ImagePullBackOff`).
    Unpullable,
    /// Its pods run but never pass their readiness probe.
    NeverReady,
    /// A quota refuses its pods (`ReplicaFailure`, `FailedCreate`).
    QuotaRefusesPods,
    /// Kubernetes gives up on it (`ProgressDeadlineExceeded`).
    ProgressDeadline,
    /// Its container keeps exiting (`CrashLoopBackOff`).
    CrashLoop,
}

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `get`, `list`, `watch`, `patch`, `delete`, or `proxy`.
    pub verb: String,
    /// The resource (plural, `deployments`), or `pods/proxy`.
    pub resource: String,
    /// The object's name, if the request named one.
    pub name: Option<String>,
    /// The field manager of an apply.
    pub field_manager: Option<String>,
}

#[derive(Debug, Clone)]
struct Event {
    rv: u64,
    resource: String,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    namespaces: Vec<String>,
    objects: BTreeMap<(String, String, String), Value>,
    events: Vec<Event>,
    rv: u64,
    next_ip: u32,
    forbidden: Vec<(String, String)>,
    quotas: Vec<String>,
    behaviours: HashMap<String, Behaviour>,
    pod_answers: Vec<(String, String, u16, String)>,
    calls: Vec<Call>,
    ready_delay: Duration,
}

struct Shared {
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake API server; stops when dropped.
pub struct FakeKube {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn respond(code: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A `Status` body as the API server sends it.
fn status(code: u16, reason: &str, message: &str, details: Value) -> Response<Body> {
    respond(
        code,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": code,
        }),
    )
}

/// The API group and kind of a resource hifi uses.
fn group_kind(resource: &str) -> (&'static str, &'static str, &'static str) {
    match resource {
        "deployments" => ("apps", "apps/v1", "Deployment"),
        "roles" => (
            "rbac.authorization.k8s.io",
            "rbac.authorization.k8s.io/v1",
            "Role",
        ),
        "rolebindings" => (
            "rbac.authorization.k8s.io",
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
        ),
        "services" => ("", "v1", "Service"),
        "configmaps" => ("", "v1", "ConfigMap"),
        "secrets" => ("", "v1", "Secret"),
        "serviceaccounts" => ("", "v1", "ServiceAccount"),
        "pods" => ("", "v1", "Pod"),
        _ => ("", "v1", "Unknown"),
    }
}

/// `deployments.apps` or `services`: how messages name a resource.
fn qualified(resource: &str) -> String {
    match group_kind(resource).0 {
        "" => resource.to_owned(),
        group => format!("{resource}.{group}"),
    }
}

fn query(uri: &hyper::Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding of a query component.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `labels` has every `k=v` of `selector`.
fn matches(selector: &str, labels: &Value) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        labels.get(k).and_then(Value::as_str) == Some(v)
    })
}

fn field_matches(selector: &str, object: &Value) -> bool {
    selector
        .split(',')
        .filter(|s| !s.is_empty())
        .all(|term| match term.split_once('=') {
            Some(("metadata.name", name)) => object["metadata"]["name"] == name,
            Some(("metadata.namespace", ns)) => object["metadata"]["namespace"] == ns,
            _ => true,
        })
}

/// What a request path names.
#[derive(Debug)]
struct Target {
    namespace: String,
    resource: String,
    name: Option<String>,
    /// The rest after `/proxy`, for proxy subresources.
    proxy: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", "v1", "namespaces", rest @ ..] => rest,
        ["apis", _, _, "namespaces", rest @ ..] => rest,
        _ => return None,
    };
    match rest {
        [ns] => Some(Target {
            namespace: (*ns).to_owned(),
            resource: "namespaces".to_owned(),
            name: Some((*ns).to_owned()),
            proxy: None,
        }),
        [ns, resource] => Some(Target {
            namespace: (*ns).to_owned(),
            resource: (*resource).to_owned(),
            name: None,
            proxy: None,
        }),
        [ns, resource, name] => Some(Target {
            namespace: (*ns).to_owned(),
            resource: (*resource).to_owned(),
            name: Some((*name).to_owned()),
            proxy: None,
        }),
        [ns, resource, name, "proxy", tail @ ..] => Some(Target {
            namespace: (*ns).to_owned(),
            resource: (*resource).to_owned(),
            name: Some((*name).to_owned()),
            proxy: Some(format!("/{}", tail.join("/"))),
        }),
        _ => None,
    }
}

impl FakeKube {
    /// Starts the fake on a free loopback port, with namespaces
    /// `namespaces` existing.
    pub async fn start(namespaces: &[&str]) -> FakeKube {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake API server");
        let addr = listener.local_addr().expect("its address");
        let (events, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
                ready_delay: Duration::from_millis(30),
                ..State::default()
            }),
            events,
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeKube { addr, shared, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig with contexts `contexts` (the first current),
    /// each leading to this server, and returns its path.
    pub fn kubeconfig(&self, dir: &Path, contexts: &[&str]) -> PathBuf {
        let mut text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: tester\n  user:\n    token: fake-token\ncontexts:\n",
            self.url()
        );
        for context in contexts {
            text.push_str(&format!(
                "- name: {context}\n  context:\n    cluster: fake\n    user: tester\n"
            ));
        }
        if let Some(first) = contexts.first() {
            text.push_str(&format!("current-context: {first}\n"));
        }
        let path = dir.join("kubeconfig");
        std::fs::write(&path, text).expect("write the kubeconfig");
        path
    }

    /// Refuses `verb` (`get`, `list`, `watch`, `patch`, `delete`) on
    /// `resource` (plural) with 403, as RBAC would.
    pub fn forbid(&self, verb: &str, resource: &str) {
        self.shared
            .lock()
            .forbidden
            .push((verb.to_owned(), resource.to_owned()));
    }

    /// Refuses new objects of `resource` with 403 "exceeded quota".
    pub fn quota(&self, resource: &str) {
        self.shared.lock().quotas.push(resource.to_owned());
    }

    /// How Deployment `name` fares from now on.
    pub fn behave(&self, name: &str, behaviour: Behaviour) {
        self.shared
            .lock()
            .behaviours
            .insert(name.to_owned(), behaviour);
    }

    /// How long the "controller manager" takes to act on a Deployment.
    pub fn ready_delay(&self, delay: Duration) {
        self.shared.lock().ready_delay = delay;
    }

    /// What pods whose name starts with `pod_prefix` answer on their proxy
    /// subresource for paths starting with `path_prefix`.
    pub fn pod_answer(&self, pod_prefix: &str, path_prefix: &str, code: u16, body: &str) {
        self.shared.lock().pod_answers.push((
            pod_prefix.to_owned(),
            path_prefix.to_owned(),
            code,
            body.to_owned(),
        ));
    }

    /// An object as stored, if it exists.
    pub fn object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        self.shared
            .lock()
            .objects
            .get(&(resource.to_owned(), namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The names of the objects of `resource` in `namespace`, sorted.
    pub fn names(&self, resource: &str, namespace: &str) -> Vec<String> {
        self.shared
            .lock()
            .objects
            .keys()
            .filter(|(r, ns, _)| r == resource && ns == namespace)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    /// Every request answered so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Forgets the requests answered so far.
    pub fn reset_calls(&self) {
        self.shared.lock().calls.clear();
    }

    /// Deletes an object as someone else would (kubectl).
    pub fn delete(&self, resource: &str, namespace: &str, name: &str) {
        remove(&self.shared, resource, namespace, name);
    }
}

/// Records an event and hands it to the watchers.
fn emit(
    shared: &Shared,
    state: &mut State,
    resource: &str,
    namespace: &str,
    kind: &'static str,
    object: Value,
) {
    let event = Event {
        rv: state.rv,
        resource: resource.to_owned(),
        namespace: namespace.to_owned(),
        kind,
        object,
    };
    state.events.push(event.clone());
    let _ = shared.events.send(event);
}

/// Stores `object` (bumping the resource version) and tells the watchers.
fn store(
    shared: &Shared,
    state: &mut State,
    resource: &str,
    namespace: &str,
    mut object: Value,
    kind: &'static str,
) -> Value {
    state.rv += 1;
    object["metadata"]["resourceVersion"] = json!(state.rv.to_string());
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    state.objects.insert(
        (resource.to_owned(), namespace.to_owned(), name),
        object.clone(),
    );
    emit(shared, state, resource, namespace, kind, object.clone());
    object
}

fn remove(shared: &Shared, resource: &str, namespace: &str, name: &str) -> Option<Value> {
    let mut state = shared.lock();
    let object =
        state
            .objects
            .remove(&(resource.to_owned(), namespace.to_owned(), name.to_owned()))?;
    state.rv += 1;
    let mut gone = object.clone();
    gone["metadata"]["resourceVersion"] = json!(state.rv.to_string());
    emit(shared, &mut state, resource, namespace, "DELETED", gone);
    if resource == "deployments" {
        let selector = object["spec"]["selector"]["matchLabels"].clone();
        let pods: Vec<String> = state
            .objects
            .iter()
            .filter(|((r, ns, _), pod)| {
                r == "pods"
                    && ns == namespace
                    && selector
                        .as_object()
                        .is_some_and(|m| m.iter().all(|(k, v)| pod["metadata"]["labels"][k] == *v))
            })
            .map(|((_, _, n), _)| n.clone())
            .collect();
        drop(state);
        for pod in pods {
            remove(shared, "pods", namespace, &pod);
        }
    }
    Some(object)
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let q = query(&uri);
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let Some(mut target) = parse_path(uri.path()) else {
        return status(
            404,
            "NotFound",
            &format!(
                "the server could not find the requested resource ({})",
                uri.path()
            ),
            json!({}),
        );
    };
    // A proxied request keeps its query for the backend.
    if let (Some(proxy), Some(query)) = (&mut target.proxy, uri.query()) {
        proxy.push('?');
        proxy.push_str(query);
    }
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&method, &target.name, &target.proxy, watch) {
        (_, _, Some(_), _) => "proxy",
        (&hyper::Method::GET, None, _, true) => "watch",
        (&hyper::Method::GET, None, _, false) => "list",
        (&hyper::Method::GET, Some(_), _, _) => "get",
        (&hyper::Method::PATCH, _, _, _) => "patch",
        (&hyper::Method::DELETE, _, _, _) => "delete",
        _ => "other",
    };
    let resource = if target.proxy.is_some() {
        format!("{}/proxy", target.resource)
    } else {
        target.resource.clone()
    };
    {
        let mut state = shared.lock();
        state.calls.push(Call {
            verb: verb.to_owned(),
            resource: resource.clone(),
            name: target.name.clone(),
            field_manager: q.get("fieldManager").cloned(),
        });
        let rbac_verb = if verb == "proxy" { "get" } else { verb };
        if state
            .forbidden
            .iter()
            .any(|(v, r)| v == rbac_verb && *r == resource)
        {
            let (group, _, _) = group_kind(&target.resource);
            let what = match &target.name {
                Some(name) => format!("{} \"{name}\"", qualified(&resource)),
                None => qualified(&resource),
            };
            return status(
                403,
                "Forbidden",
                &format!(
                    "{what} is forbidden: User \"tester\" cannot {rbac_verb} resource \"{resource}\" in API group \"{group}\" in the namespace \"{}\"",
                    target.namespace
                ),
                json!({"name": target.name.clone().unwrap_or_default(), "group": group, "kind": target.resource}),
            );
        }
        if !state.namespaces.contains(&target.namespace) {
            return status(
                404,
                "NotFound",
                &format!("namespaces \"{}\" not found", target.namespace),
                json!({"name": target.namespace, "kind": "namespaces"}),
            );
        }
    }
    if target.resource == "namespaces" {
        return respond(
            200,
            &json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": target.namespace}, "status": {"phase": "Active"}}),
        );
    }
    match verb {
        "get" => get(shared, &target),
        "list" => list(shared, &target, &q),
        "watch" => watch_objects(shared, &target, &q),
        "patch" => {
            let body = match req.into_body().collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => return status(400, "BadRequest", &e.to_string(), json!({})),
            };
            apply(shared, &target, &q, &content_type, &body)
        }
        "delete" => delete(shared, &target),
        "proxy" => proxy(shared, &target),
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            json!({}),
        ),
    }
}

fn not_found(target: &Target) -> Response<Body> {
    let name = target.name.clone().unwrap_or_default();
    status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", qualified(&target.resource)),
        json!({"name": name, "group": group_kind(&target.resource).0, "kind": target.resource}),
    )
}

fn get(shared: &Shared, target: &Target) -> Response<Body> {
    let name = target.name.clone().unwrap_or_default();
    match shared
        .lock()
        .objects
        .get(&(target.resource.clone(), target.namespace.clone(), name))
    {
        Some(object) => respond(200, object),
        None => not_found(target),
    }
}

fn list(shared: &Shared, target: &Target, q: &HashMap<String, String>) -> Response<Body> {
    let state = shared.lock();
    let labels = q.get("labelSelector").cloned().unwrap_or_default();
    let fields = q.get("fieldSelector").cloned().unwrap_or_default();
    let items: Vec<Value> = state
        .objects
        .iter()
        .filter(|((r, ns, _), o)| {
            *r == target.resource
                && *ns == target.namespace
                && matches(&labels, &o["metadata"]["labels"])
                && field_matches(&fields, o)
        })
        .map(|(_, o)| {
            // Items of a real list carry no kind or apiVersion.
            let mut o = o.clone();
            if let Some(map) = o.as_object_mut() {
                map.remove("kind");
                map.remove("apiVersion");
            }
            o
        })
        .collect();
    let (_, api_version, kind) = group_kind(&target.resource);
    respond(
        200,
        &json!({
            "kind": format!("{kind}List"),
            "apiVersion": api_version,
            "metadata": {"resourceVersion": state.rv.to_string()},
            "items": items,
        }),
    )
}

fn watch_objects(
    shared: &Arc<Shared>,
    target: &Target,
    q: &HashMap<String, String>,
) -> Response<Body> {
    let labels = q.get("labelSelector").cloned().unwrap_or_default();
    let fields = q.get("fieldSelector").cloned().unwrap_or_default();
    let since: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(300),
    );
    let resource = target.resource.clone();
    let namespace = target.namespace.clone();
    let wanted = move |e: &Event| {
        e.resource == resource
            && e.namespace == namespace
            && matches(&labels, &e.object["metadata"]["labels"])
            && field_matches(&fields, &e.object)
    };
    // Subscribe before reading the past, so nothing falls in between.
    let mut live = shared.events.subscribe();
    let past: Vec<Event> = {
        let state = shared.lock();
        if since == 0 {
            state
                .objects
                .iter()
                .filter(|((r, ns, _), _)| *r == target.resource && *ns == target.namespace)
                .map(|((r, ns, _), o)| Event {
                    rv: state.rv,
                    resource: r.clone(),
                    namespace: ns.clone(),
                    kind: "ADDED",
                    object: o.clone(),
                })
                .filter(|e| wanted(e))
                .collect()
        } else {
            state
                .events
                .iter()
                .filter(|e| e.rv > since && wanted(e))
                .cloned()
                .collect()
        }
    };
    let last = past.last().map_or(since, |e| e.rv.max(since));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let line =
            |e: &Event| Bytes::from(format!("{}\n", json!({"type": e.kind, "object": e.object})));
        for e in &past {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                next = live.recv() => next,
            };
            match next {
                Ok(e) if e.rv > last && wanted(&e) => {
                    if tx.send(line(&e)).await.is_err() {
                        return;
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let bytes = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(bytes)), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn apply(
    shared: &Arc<Shared>,
    target: &Target,
    q: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
) -> Response<Body> {
    if content_type != "application/apply-patch+yaml" {
        return status(
            415,
            "UnsupportedMediaType",
            &format!(
                "the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml (got {content_type:?})"
            ),
            json!({}),
        );
    }
    if q.get("fieldManager").is_none_or(String::is_empty) {
        return status(
            422,
            "Invalid",
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            json!({}),
        );
    }
    let Ok(mut object) = serde_json::from_slice::<Value>(body) else {
        return status(
            400,
            "BadRequest",
            "error decoding YAML/JSON of the apply patch",
            json!({}),
        );
    };
    let name = target.name.clone().unwrap_or_default();
    if object["metadata"]["name"] != name.as_str() {
        return status(
            400,
            "BadRequest",
            "the name of the object does not match the name on the URL",
            json!({}),
        );
    }
    let (_, api_version, kind) = group_kind(&target.resource);
    if object["apiVersion"] != api_version || object["kind"] != kind {
        return status(
            400,
            "BadRequest",
            &format!("the apply patch is not a {api_version} {kind}"),
            json!({}),
        );
    }
    let key = (
        target.resource.clone(),
        target.namespace.clone(),
        name.clone(),
    );
    let mut state = shared.lock();
    let existing = state.objects.get(&key).cloned();
    if existing.is_none() && state.quotas.contains(&target.resource) {
        return status(
            403,
            "Forbidden",
            &format!(
                "{} \"{name}\" is forbidden: exceeded quota: compute, requested: {}=1, used: {}=4, limited: {}=4",
                qualified(&target.resource),
                target.resource,
                target.resource,
                target.resource
            ),
            json!({"name": name, "kind": target.resource}),
        );
    }
    object["metadata"]["namespace"] = json!(target.namespace);
    let created = existing.is_none();
    match existing {
        None => {
            object["metadata"]["uid"] =
                json!(format!("00000000-0000-4000-8000-{:012}", state.rv + 1));
            object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            if target.resource == "deployments" {
                object["metadata"]["generation"] = json!(1);
            }
            if target.resource == "services" {
                state.next_ip += 1;
                let n = state.next_ip;
                object["spec"]["clusterIP"] = json!(format!("127.1.{}.{}", n / 250, n % 250 + 1));
            }
        }
        Some(old) => {
            for key in ["uid", "creationTimestamp", "generation"] {
                if !old["metadata"][key].is_null() {
                    object["metadata"][key] = old["metadata"][key].clone();
                }
            }
            if target.resource == "services" {
                object["spec"]["clusterIP"] = old["spec"]["clusterIP"].clone();
            }
            if target.resource == "deployments" && old["spec"] != object["spec"] {
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                object["metadata"]["generation"] = json!(generation);
            }
            if !old["status"].is_null() {
                object["status"] = old["status"].clone();
            }
        }
    }
    let kind = if created { "ADDED" } else { "MODIFIED" };
    let stored = store(
        shared,
        &mut state,
        &target.resource,
        &target.namespace,
        object,
        kind,
    );
    let delay = state.ready_delay;
    drop(state);
    if target.resource == "deployments" {
        let shared = shared.clone();
        let namespace = target.namespace.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            reconcile(&shared, &namespace, &name);
        });
    }
    respond(if created { 201 } else { 200 }, &stored)
}

/// The controller manager and kubelet for one Deployment: pods and status
/// according to its behaviour.
fn reconcile(shared: &Shared, namespace: &str, name: &str) {
    let mut state = shared.lock();
    let key = (
        "deployments".to_owned(),
        namespace.to_owned(),
        name.to_owned(),
    );
    let Some(mut deployment) = state.objects.get(&key).cloned() else {
        return;
    };
    let behaviour = state
        .behaviours
        .get(name)
        .cloned()
        .unwrap_or(Behaviour::Available);
    let replicas = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let generation = deployment["metadata"]["generation"].as_i64().unwrap_or(1);
    let labels = deployment["spec"]["template"]["metadata"]["labels"].clone();
    let image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let container = deployment["spec"]["template"]["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap_or("app")
        .to_owned();
    // Pods of this generation, replacing those of earlier ones.
    let old: Vec<String> = state
        .objects
        .iter()
        .filter(|((r, ns, n), _)| {
            r == "pods" && ns == namespace && n.starts_with(&format!("{name}-"))
        })
        .map(|((_, _, n), _)| n.clone())
        .collect();
    for pod in old {
        state
            .objects
            .remove(&("pods".to_owned(), namespace.to_owned(), pod.clone()));
        state.rv += 1;
    }
    let (ready, waiting): (bool, Option<(&str, String)>) = match behaviour {
        Behaviour::Available => (true, None),
        Behaviour::NeverReady => (false, None),
        Behaviour::Unpullable => (
            false,
            Some((
                "ImagePullBackOff",
                format!("Back-off pulling image \"{image}\""),
            )),
        ),
        Behaviour::CrashLoop => (
            false,
            Some((
                "CrashLoopBackOff",
                format!("back-off 10s restarting failed container={container}"),
            )),
        ),
        Behaviour::QuotaRefusesPods | Behaviour::ProgressDeadline => (false, None),
    };
    let pods = if behaviour == Behaviour::QuotaRefusesPods {
        0
    } else {
        replicas
    };
    for i in 0..pods {
        let pod_name = format!("{name}-{generation:x}7f9c-{i}");
        let state_of = match &waiting {
            Some((reason, message)) => json!({"waiting": {"reason": reason, "message": message}}),
            None => json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
        };
        let pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace, "labels": labels},
            "spec": {"containers": [{"name": container, "image": image}]},
            "status": {
                "phase": if waiting.is_some() { "Pending" } else { "Running" },
                "containerStatuses": [{
                    "name": container,
                    "image": image,
                    "imageID": "",
                    "ready": ready,
                    "restartCount": if behaviour == Behaviour::CrashLoop { 3 } else { 0 },
                    "state": state_of,
                    "lastState": if behaviour == Behaviour::CrashLoop { json!({"terminated": {"exitCode": 3, "reason": "Error"}}) } else { json!({}) },
                }],
            },
        });
        store(shared, &mut state, "pods", namespace, pod, "ADDED");
    }
    let available = if ready { replicas } else { 0 };
    let mut conditions = vec![json!({
        "type": "Available",
        "status": if ready { "True" } else { "False" },
        "reason": if ready { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
        "message": if ready { "Deployment has minimum availability." } else { "Deployment does not have minimum availability." },
    })];
    match behaviour {
        Behaviour::ProgressDeadline => conditions.push(json!({
            "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": format!("ReplicaSet \"{name}-7f9c\" has timed out progressing."),
        })),
        Behaviour::QuotaRefusesPods => conditions.push(json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": format!("pods \"{name}-7f9c-x\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10"),
        })),
        _ => conditions.push(json!({
            "type": "Progressing", "status": "True",
            "reason": if ready { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
            "message": format!("ReplicaSet \"{name}-7f9c\" is progressing."),
        })),
    }
    deployment["status"] = json!({
        "observedGeneration": generation,
        "replicas": pods,
        "updatedReplicas": pods,
        "readyReplicas": available,
        "availableReplicas": available,
        "unavailableReplicas": replicas - available,
        "conditions": conditions,
    });
    store(
        shared,
        &mut state,
        "deployments",
        namespace,
        deployment,
        "MODIFIED",
    );
}

fn delete(shared: &Shared, target: &Target) -> Response<Body> {
    let name = target.name.clone().unwrap_or_default();
    match remove(shared, &target.resource, &target.namespace, &name) {
        Some(_) => respond(
            200,
            &json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": group_kind(&target.resource).0, "kind": target.resource},
            }),
        ),
        None => not_found(target),
    }
}

fn proxy(shared: &Shared, target: &Target) -> Response<Body> {
    let full_name = target.name.clone().unwrap_or_default();
    let name = full_name.split(':').next().unwrap_or_default().to_owned();
    let path = target.proxy.clone().unwrap_or_default();
    let state = shared.lock();
    let key = (
        target.resource.clone(),
        target.namespace.clone(),
        name.clone(),
    );
    let Some(object) = state.objects.get(&key) else {
        return not_found(&Target {
            namespace: target.namespace.clone(),
            resource: target.resource.clone(),
            name: Some(name),
            proxy: None,
        });
    };
    match target.resource.as_str() {
        "pods" => {
            for (pod, prefix, code, body) in &state.pod_answers {
                if name.starts_with(pod.as_str()) && path.starts_with(prefix.as_str()) {
                    let mut response = respond(*code, &json!(null));
                    *response.body_mut() = full(body.clone());
                    return response;
                }
            }
            status(
                503,
                "ServiceUnavailable",
                &format!(
                    "error trying to reach service: dial tcp: connect: connection refused (pod {name})"
                ),
                json!({}),
            )
        }
        "services" => {
            let selector = object["spec"]["selector"].clone();
            let ready = state.objects.iter().any(|((r, ns, _), pod)| {
                r == "pods"
                    && *ns == target.namespace
                    && selector
                        .as_object()
                        .is_some_and(|m| m.iter().all(|(k, v)| pod["metadata"]["labels"][k] == *v))
                    && pod["status"]["containerStatuses"][0]["ready"] == true
            });
            if ready {
                let mut response = respond(200, &json!(null));
                *response.body_mut() = full("ok\n");
                response
            } else {
                status(
                    503,
                    "ServiceUnavailable",
                    &format!("no endpoints available for service \"{name}\""),
                    json!({}),
                )
            }
        }
        _ => status(404, "NotFound", "no proxy for this resource", json!({})),
    }
}
