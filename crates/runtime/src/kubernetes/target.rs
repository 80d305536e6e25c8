//! [`Target`]: where one environment runs in Kubernetes — the kubeconfig
//! context, the namespace, how its proxy is exposed, the registry its
//! images come from — resolved once from `hifi.toml`.

use hifi_core::{Config, Environment, Expose, Resources};

/// Where one environment runs on Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The project (`[project] name`), the `hifi.dev/project` label.
    pub project: String,
    /// The environment.
    pub env: String,
    /// The kubeconfig context; `None` is the current one.
    pub context: Option<String>,
    /// The namespace.
    pub namespace: String,
    /// The type of the proxy's Service.
    pub expose: Expose,
    /// `[registry] url`.
    pub registry: String,
    /// The image the proxy runs.
    pub proxy_image: String,
    /// What each service container asks for and may use.
    pub resources: Resources,
}

impl Target {
    /// The target of `env`, `None` unless it runs on Kubernetes.
    pub fn of(config: &Config, env: &Environment) -> Option<Target> {
        let kubernetes = env.kubernetes.as_ref()?;
        let registry = config.registry.as_ref()?.url.clone();
        Some(Target {
            project: config.name.clone(),
            env: env.name.clone(),
            context: kubernetes.context.clone(),
            namespace: kubernetes.namespace.clone(),
            expose: kubernetes.expose,
            proxy_image: kubernetes
                .proxy_image
                .clone()
                .unwrap_or_else(|| default_proxy_image(&registry)),
            resources: kubernetes.resources.clone(),
            registry,
        })
    }

    /// Every Kubernetes environment of `config`.
    pub fn all(config: &Config) -> Vec<Target> {
        config
            .environments
            .iter()
            .filter_map(|env| Target::of(config, env))
            .collect()
    }

    /// The repository a service's image is pushed to: `<registry>/<service>`.
    pub fn repository(&self, service: &str) -> String {
        repository(&self.registry, service)
    }

    /// How errors name the context.
    pub fn context_name(&self) -> String {
        match &self.context {
            Some(context) => format!("context `{context}`"),
            None => "the current context".to_owned(),
        }
    }
}

/// The repository a service's image is pushed to: `<registry>/<service>`.
pub fn repository(registry: &str, service: &str) -> String {
    format!("{registry}/{service}")
}

/// `<registry>/hifi:<this hifi's version>`: the image of hifi itself, whose
/// `hifi proxy` the environment's proxy runs, unless `proxy_image` says
/// otherwise.
pub fn default_proxy_image(registry: &str) -> String {
    format!("{registry}/hifi:{}", env!("CARGO_PKG_VERSION"))
}
