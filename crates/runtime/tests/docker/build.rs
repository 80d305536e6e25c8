//! Image builds: ids, the build cache, the build log, failures, and what a
//! recorded id means when tags move or images vanish.

use std::path::Path;

use bollard::query_parameters::RemoveImageOptions;
use hifi_runtime::docker::{ImageId, build_image, image_exists, image_id};
use hifi_runtime::{Error, Runtime};

use super::{Project, docker, get, read};

#[tokio::test]
async fn build_returns_the_image_id_and_an_unchanged_context_builds_to_the_same_id() {
    let Some(p) =
        Project::new("build_returns_the_image_id_and_an_unchanged_context_builds_to_the_same_id")
            .await
    else {
        return;
    };
    let id = p.image("v1").await;
    assert!(ImageId::parse(id.as_str()).is_some(), "{id}");
    assert!(image_exists(&p.engine, &id).await.unwrap());
    assert_eq!(
        image_id(&p.engine, &p.tag("v1")).await.unwrap(),
        Some(id.clone())
    );

    let log = read(&p.path("build.log"));
    assert!(
        log.contains(&format!("==> hifi: building image {}", p.tag("v1"))),
        "{log}"
    );
    assert!(
        log.contains("Step 1/"),
        "the builder's output is in the log:\n{log}"
    );
    assert!(
        log.contains(&format!("==> hifi: built {} as {id}", p.tag("v1"))),
        "{log}"
    );

    // A second build of the same context hits the cache: same image.
    let again = p.image("v1").await;
    assert_eq!(again, id);
    // Another content is another image.
    let other = p.image("v2").await;
    assert_ne!(other, id);
}

#[tokio::test]
async fn a_failing_build_says_why_and_where_its_output_is() {
    let Some(p) = Project::new("a_failing_build_says_why_and_where_its_output_is").await else {
        return;
    };
    let context = p.context("broken");
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY no-such-file /x\n",
    )
    .unwrap();
    let log = p.path("logs/broken-build.log");
    let err = build_image(
        &p.engine,
        &context,
        Path::new("Dockerfile"),
        &p.tag("broken"),
        &log,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Build { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("building image {} failed: ", p.tag("broken"))),
        "{message}"
    );
    assert!(message.contains("no-such-file"), "{message}");
    assert!(
        message.ends_with(&format!("the build output is in {}", log.display())),
        "{message}"
    );
    assert!(read(&log).contains("no-such-file"), "{}", read(&log));

    // No Dockerfile where it is said to be: the engine refuses at once.
    let err = build_image(
        &p.engine,
        &context,
        Path::new("nope/Dockerfile"),
        &p.tag("broken"),
        &log,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Build { .. }), "{err:?}");
    assert!(err.to_string().contains("nope/Dockerfile"), "{err}");

    let missing = p.path("no-such-dir");
    let err = build_image(
        &p.engine,
        &missing,
        Path::new("Dockerfile"),
        &p.tag("x"),
        &log,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::BuildContext { .. }), "{err:?}");
}

#[tokio::test]
async fn a_tag_re_pointed_to_another_image_does_not_change_what_a_recorded_id_runs() {
    let Some(p) =
        Project::new("a_tag_re_pointed_to_another_image_does_not_change_what_a_recorded_id_runs")
            .await
    else {
        return;
    };
    // Both contents also have their shared tags, so removing this test's
    // own tag at its end never deletes an image.
    let _ = (p.image("v1").await, p.image("v2").await);
    let tag = p.own_tag("latest");
    let v1 = build_image(
        &p.engine,
        &p.context("v1"),
        Path::new("Dockerfile"),
        &tag,
        &p.path("build.log"),
    )
    .await
    .unwrap();
    // The same tag, another content: the tag now names the new image...
    let v2 = build_image(
        &p.engine,
        &p.context("v2"),
        Path::new("Dockerfile"),
        &tag,
        &p.path("build.log"),
    )
    .await
    .unwrap();
    assert_ne!(v1, v2);
    assert_eq!(image_id(&p.engine, &tag).await.unwrap(), Some(v2));
    // ...but the recorded id still runs what was built as v1.
    assert!(image_exists(&p.engine, &v1).await.unwrap());
    let rt = p.runtime();
    let spec = p.spec("web", &v1, None);
    let instance = rt.start(&spec).await.unwrap();
    rt.wait_healthy(&spec, &instance, super::PATIENCE)
        .await
        .unwrap();
    assert_eq!(get(instance.addr, "/version").await, "v1\n");
    rt.stop(&instance, super::PATIENCE).await.unwrap();
}

#[tokio::test]
async fn an_image_that_no_longer_exists_or_a_tag_is_refused_clearly() {
    let Some(p) = Project::new("an_image_that_no_longer_exists_or_a_tag_is_refused_clearly").await
    else {
        return;
    };
    let id = p.image("doomed").await;
    let docker = docker().unwrap();
    docker
        .remove_image(
            id.as_str(),
            Some(RemoveImageOptions {
                force: true,
                ..Default::default()
            }),
            None,
        )
        .await
        .unwrap();
    assert!(!image_exists(&p.engine, &id).await.unwrap());

    let rt = p.runtime();
    let spec = p.spec("web", &id, None);
    let err = rt.start(&spec).await.unwrap_err();
    assert!(matches!(err, Error::ImageMissing { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "could not start service web (dev/green): image {id} does not exist in the Docker engine \
             (was it removed, e.g. by `docker image prune`?); hifi runs only the image recorded with the release, so a new release (a new commit) is needed to build another"
        )
    );

    // A tag is never run, even one that exists.
    let tagged = p.image("kept").await;
    let mut spec = p.spec("web", &tagged, None);
    spec.program = hifi_runtime::Program::Image {
        image: p.tag("kept"),
        command: None,
    };
    let err = rt.start(&spec).await.unwrap_err();
    assert!(matches!(err, Error::NotAnImageId { .. }), "{err:?}");
    assert!(err.to_string().contains("is not an image id"), "{err}");
    assert!(super::containers(&docker, &p.name, true).await.is_empty());
}

#[tokio::test]
async fn files_the_dockerignore_leaves_out_never_reach_the_image() {
    let Some(p) = Project::new("files_the_dockerignore_leaves_out_never_reach_the_image").await
    else {
        return;
    };
    let context = p.context("ignore");
    std::fs::write(context.join("www/secret.txt"), "password\n").unwrap();
    std::fs::create_dir_all(context.join("www/notes")).unwrap();
    std::fs::write(context.join("www/notes/draft.md"), "draft\n").unwrap();
    std::fs::write(context.join("www/notes/keep.md"), "keep\n").unwrap();
    std::fs::write(context.join("www/app.log"), "log\n").unwrap();
    // The Dockerfile is listed too: it is still sent (the builder needs it).
    std::fs::write(
        context.join(".dockerignore"),
        "# local files\n/www/secret.txt\nwww/notes\n!www/notes/keep.md\n**/*.log\nDockerfile\n",
    )
    .unwrap();
    let dockerfile = std::fs::read_to_string(context.join("Dockerfile")).unwrap();
    std::fs::write(
        context.join("Dockerfile"),
        dockerfile.replace(
            "CMD",
            "RUN [\"/bin/busybox\", \"sh\", \"-c\", \"cd /www && /bin/busybox find . -type f | /bin/busybox sort > /www/listing\"]\nCMD",
        ),
    )
    .unwrap();
    let id = build_image(
        &p.engine,
        &context,
        Path::new("Dockerfile"),
        &p.tag("ignore"),
        &p.path("build.log"),
    )
    .await
    .unwrap();

    let rt = p.runtime();
    let spec = p.spec("web", &id, None);
    let instance = rt.start(&spec).await.unwrap();
    rt.wait_healthy(&spec, &instance, super::PATIENCE)
        .await
        .unwrap();
    let listing = get(instance.addr, "/listing").await;
    let files: Vec<&str> = listing.lines().collect();
    assert!(files.contains(&"./version"), "{listing}");
    assert!(files.contains(&"./notes/keep.md"), "{listing}");
    for gone in ["./secret.txt", "./notes/draft.md", "./app.log"] {
        assert!(
            !files.contains(&gone),
            "{gone} reached the image:\n{listing}"
        );
    }
}

#[tokio::test]
async fn a_broken_dockerignore_fails_the_build_naming_its_line() {
    let Some(p) = Project::new("a_broken_dockerignore_fails_the_build_naming_its_line").await
    else {
        return;
    };
    let context = p.context("bad-ignore");
    std::fs::write(context.join(".dockerignore"), "# fine\nwww/[oops\n").unwrap();
    let tag = p.own_tag("bad-ignore");
    let err = build_image(
        &p.engine,
        &context,
        Path::new("Dockerfile"),
        &tag,
        &p.path("build.log"),
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(".dockerignore: line 2") && message.contains("never closed"),
        "{message}"
    );
    // Nothing was built under the tag.
    assert_eq!(image_id(&p.engine, &tag).await.unwrap(), None);
}
