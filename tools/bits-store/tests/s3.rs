//! Upload and fetch against a real S3 server (moto) on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bits_store::s3::PART_SIZE;
use bits_store::testing::{Moto, free_port};
use bits_store::{Ctx, Dest, Error, FetchOptions, S3Env, UploadOptions, fetch, upload};
use common::{STAMP, make_bits, md5_hex};
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutOptions};

const BUCKET: &str = "bits";

/// moto with the bucket made, and a bits dir (under `tmp`) holding one
/// triton-api build whose image is `image_size` bytes.
struct Setup {
    moto: Moto,
    tmp: tempfile::TempDir,
    bits: PathBuf,
    files: Vec<PathBuf>,
}

fn setup(image_size: usize) -> Setup {
    let moto = Moto::start().unwrap();
    moto.create_bucket(BUCKET).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let files = make_bits(&bits, "triton-api", STAMP, image_size);
    Setup {
        moto,
        tmp,
        bits,
        files,
    }
}

fn opts(moto: &Moto, bits: &Path, dest: &str) -> UploadOptions {
    UploadOptions {
        bits_dir: bits.to_path_buf(),
        names: vec!["triton-api".into()],
        dest: Dest::parse(dest).unwrap(),
        prefix: String::new(),
        branch: Some("master".into()),
        allow_dirty: false,
        allow_dev: false,
        s3_env: S3Env::from_pairs(moto.env()),
    }
}

fn ctx() -> std::sync::Arc<Ctx> {
    Ctx::new(
        std::num::NonZeroUsize::new(4).unwrap(),
        std::sync::Arc::new(progress::Silent),
    )
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A plain client for looking behind the library's back.
fn client(moto: &Moto) -> object_store::aws::AmazonS3 {
    moto.client(BUCKET).unwrap()
}

/// key -> (md5 of body, md5 metadata, e_tag)
async fn objects(
    s3: &object_store::aws::AmazonS3,
) -> BTreeMap<String, (String, Option<String>, Option<String>)> {
    let metas: Vec<_> = s3.list(None).try_collect().await.unwrap();
    let mut out = BTreeMap::new();
    for m in metas {
        let r = s3.get(&m.location).await.unwrap();
        let meta = r
            .attributes
            .get(&Attribute::Metadata("md5".into()))
            .map(|v| v.to_string());
        let body = r.bytes().await.unwrap();
        out.insert(m.location.to_string(), (md5_hex(&body), meta, m.e_tag));
    }
    out
}

/// The `x-amz-checksum-crc32` a HEAD with checksum mode on reports.
fn stored_crc32(moto: &Moto, path: &str) -> Option<String> {
    let head = moto
        .raw("HEAD", path, "x-amz-checksum-mode: ENABLED\r\n")
        .unwrap();
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-amz-checksum-crc32")
            .then(|| v.trim().to_string())
    })
}

/// Parts went with CRC32 checksums: the store reports the composite it
/// built from the bytes it holds, which must be that of `file`'s parts.
fn assert_crc32_composite(moto: &Moto, path: &str, file: &Path) {
    use base64::Engine as _;
    let data = std::fs::read(file).unwrap();
    let mut crcs = Vec::new();
    for c in data.chunks(PART_SIZE) {
        crcs.extend_from_slice(&crc32fast::hash(c).to_be_bytes());
    }
    let want =
        base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(&crcs).to_be_bytes());
    let got = stored_crc32(moto, path).unwrap();
    // S3 appends "-<parts>"; moto's HEAD does not.
    let parts = format!("-{}", data.len().div_ceil(PART_SIZE));
    assert_eq!(got.strip_suffix(&parts).unwrap_or(&got), want, "{path}");
}

/// A file of whole parts only: the read that finds its end is empty, and
/// it still goes as exactly its parts, with the right md5.
#[test]
fn a_file_of_whole_parts() {
    let Setup {
        moto,
        tmp: _tmp,
        bits,
        files,
    } = setup(2 * PART_SIZE);
    let o = opts(&moto, &bits, "s3://bits/whole");
    rt().block_on(upload(&o, ctx())).unwrap();
    let image = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with(".zfs.gz"))
        .unwrap();
    let n = image.file_name().unwrap().to_str().unwrap();
    let key = format!("whole/triton-api/{STAMP}/triton-api/{n}");
    let got = rt().block_on(objects(&client(&moto)));
    assert_eq!(got[&key].0, md5_hex(&std::fs::read(image).unwrap()));
    assert_crc32_composite(&moto, &format!("/{BUCKET}/{key}"), image);
    let listed = rt()
        .block_on(async {
            client(&moto)
                .get(&ObjPath::from(format!(
                    "whole/triton-api/{STAMP}/md5sums.txt"
                )))
                .await
                .unwrap()
                .bytes()
                .await
        })
        .unwrap();
    let listed = std::str::from_utf8(&listed).unwrap();
    let line = format!("{}  triton-api/{n}\n", got[&key].0);
    assert!(listed.contains(&line), "{listed}");
}

/// A consumer this project did not write: aws-cli downloads the stamp
/// dir we stored (a multipart image among its files), and `md5sum -c
/// md5sums.txt` passes in it, as eng's consumers check bits.
#[test]
fn aws_cli_fetches_our_upload_and_md5sum_checks_it() {
    let Setup {
        moto, tmp, bits, ..
    } = setup(2 * PART_SIZE + 777);
    rt().block_on(upload(&opts(&moto, &bits, "s3://bits/aws"), ctx()))
        .unwrap();

    let got = tmp.path().join("got");
    let out = std::process::Command::new("aws")
        .args(["s3", "cp", "--recursive", "--quiet", "--endpoint-url"])
        .arg(moto.endpoint())
        .arg(format!("s3://{BUCKET}/aws/triton-api/{STAMP}/"))
        .arg(&got)
        .envs(moto.env())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .output()
        .expect("running aws (python3 -m pip install awscli)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let check = std::process::Command::new("md5sum")
        .args(["-c", "md5sums.txt"])
        .current_dir(&got)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}");
    assert_eq!(said.matches(": OK").count(), 4, "{said}");
}

#[test]
fn exact_layout_pointer_and_rerun_no_op() {
    // Bigger than one part: exercises multipart.
    let Setup {
        moto,
        tmp: _tmp,
        bits,
        files,
    } = setup(2 * PART_SIZE + 12345);
    let o = opts(&moto, &bits, "s3://bits/public/builds");
    let rep = rt().block_on(upload(&o, ctx())).unwrap();
    assert_eq!((rep.stored, rep.skipped), (4, 0));

    let s3 = client(&moto);
    let got = rt().block_on(objects(&s3));
    let base = "public/builds/triton-api";
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    let mut sums = Vec::new();
    for f in &files {
        let n = f.file_name().unwrap().to_str().unwrap();
        let md5 = md5_hex(&std::fs::read(f).unwrap());
        want.insert(format!("{base}/{STAMP}/triton-api/{n}"), md5.clone());
        sums.push((n.to_string(), md5));
    }
    sums.sort();
    let sums: String = sums
        .iter()
        .map(|(n, m)| format!("{m}  triton-api/{n}\n"))
        .collect();
    let pointer = format!("/bits/{base}/{STAMP}\n");
    want.insert(
        format!("{base}/{STAMP}/md5sums.txt"),
        md5_hex(sums.as_bytes()),
    );
    want.insert(format!("{base}/master-latest"), md5_hex(pointer.as_bytes()));
    let got_md5: BTreeMap<String, String> =
        got.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect();
    assert_eq!(got_md5, want);
    // Single-PUT objects carry their md5 as metadata; the multipart image
    // cannot (its md5 is known only once sent) and md5sums.txt vouches.
    for f in &files {
        let n = f.file_name().unwrap().to_str().unwrap();
        let (md5, meta, _) = &got[&format!("{base}/{STAMP}/triton-api/{n}")];
        if std::fs::metadata(f).unwrap().len() <= PART_SIZE as u64 {
            assert_eq!(meta.as_deref(), Some(md5.as_str()), "{n}");
        } else {
            assert_eq!(meta.as_deref(), None, "{n}");
            let path = format!("/{BUCKET}/{base}/{STAMP}/triton-api/{n}");
            assert_crc32_composite(&moto, &path, f);
        }
    }
    let body = rt()
        .block_on(async {
            s3.get(&ObjPath::from(format!("{base}/{STAMP}/md5sums.txt")))
                .await
                .unwrap()
                .bytes()
                .await
        })
        .unwrap();
    assert_eq!(std::str::from_utf8(&body).unwrap(), sums);

    // artifacts.txt names s3:// URLs.
    let arts = std::fs::read_to_string(bits.join("artifacts.txt")).unwrap();
    assert!(
        arts.lines()
            .all(|l| l.starts_with("s3://bits/public/builds/triton-api/")),
        "{arts}"
    );
    assert_eq!(arts.lines().count(), 6);

    // Rerun: nothing stored, nothing rewritten (same e_tags).
    let rep = rt().block_on(upload(&o, ctx())).unwrap();
    assert_eq!((rep.stored, rep.skipped), (0, 4));
    let again = rt().block_on(objects(&s3));
    assert_eq!(again, got);
}

#[test]
fn changed_file_refused_and_foreign_objects_hashed() {
    let Setup {
        moto,
        tmp: _tmp,
        bits,
        files,
    } = setup(50_000);
    let s3 = client(&moto);
    let key = |f: &Path| {
        ObjPath::from(format!(
            "triton-api/{STAMP}/triton-api/{}",
            f.file_name().unwrap().to_str().unwrap()
        ))
    };
    // Objects put by another tool, without md5 metadata: one identical,
    // one different. The identical one is recognised by hashing it.
    rt().block_on(async {
        s3.put(&key(&files[0]), std::fs::read(&files[0]).unwrap().into())
            .await
            .unwrap();
        s3.put(&key(&files[1]), b"someone else's bytes".to_vec().into())
            .await
            .unwrap();
    });
    let before = rt().block_on(objects(&s3));
    let o = opts(&moto, &bits, "s3://bits");
    let err = rt().block_on(upload(&o, ctx())).unwrap_err();
    assert!(matches!(err, Error::Immutable { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&key(&files[1]).to_string()) && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!(
        rt().block_on(objects(&s3)),
        before,
        "nothing else may change"
    );

    // With the conflicting object gone, the identical foreign one is kept.
    rt().block_on(s3.delete(&key(&files[1]))).unwrap();
    let rep = rt().block_on(upload(&o, ctx())).unwrap();
    assert_eq!((rep.stored, rep.skipped), (3, 1));
}

#[test]
fn fetch_round_trip_and_md5_mismatch() {
    let Setup {
        moto,
        tmp,
        bits,
        files,
    } = setup(PART_SIZE + 1);
    let o = opts(&moto, &bits, "s3://bits/builds");
    rt().block_on(upload(&o, ctx())).unwrap();

    let fo = |out: &Path| FetchOptions {
        dest: o.dest.clone(),
        prefix: String::new(),
        name: "triton-api".into(),
        branch: Some("master".into()),
        stamp: None,
        out: out.to_path_buf(),
        s3_env: o.s3_env.clone(),
    };
    let out = tmp.path().join("out");
    let rep = rt().block_on(fetch(&fo(&out), ctx())).unwrap();
    assert_eq!(rep.stamp, STAMP);
    for f in &files {
        let got = out.join("triton-api").join(f.file_name().unwrap());
        assert_eq!(std::fs::read(got).unwrap(), std::fs::read(f).unwrap());
    }

    // Corrupt the stored manifest, keeping its md5 metadata as it was.
    let s3 = client(&moto);
    let name = files[2].file_name().unwrap().to_str().unwrap();
    let key = ObjPath::from(format!("builds/triton-api/{STAMP}/triton-api/{name}"));
    rt().block_on(async {
        let meta = s3
            .get_opts(
                &key,
                GetOptions {
                    head: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .attributes;
        let mut attrs = Attributes::new();
        for (k, v) in meta.iter() {
            attrs.insert(k.clone(), v.clone());
        }
        let opts = PutOptions {
            attributes: attrs,
            ..Default::default()
        };
        s3.put_opts(&key, b"{\"tampered\":true}\n".to_vec().into(), opts)
            .await
            .unwrap();
    });
    let out2 = tmp.path().join("out2");
    let err = rt().block_on(fetch(&fo(&out2), ctx())).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    assert!(err.to_string().contains(name), "{err}");
    assert!(!out2.join("triton-api").join(name).exists());

    rt().block_on(s3.delete(&key)).unwrap();
    let err = rt()
        .block_on(fetch(&fo(&tmp.path().join("out3")), ctx()))
        .unwrap_err();
    assert!(matches!(err, Error::MissingObject { .. }), "{err}");
}

#[test]
fn credentials_endpoint_and_bucket_errors_are_one_clear_line() {
    let Setup {
        moto,
        tmp: _tmp,
        bits,
        ..
    } = setup(1000);

    let one_line = |e: &Error| {
        let s = e.to_string();
        assert!(!s.contains('\n'), "{s}");
        s
    };

    let mut o = opts(&moto, &bits, "s3://bits");
    o.s3_env = S3Env::from_pairs(
        moto.env()
            .into_iter()
            .filter(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET")),
    );
    let err = rt().block_on(upload(&o, ctx())).unwrap_err();
    assert!(
        matches!(err, Error::MissingCredentials { .. }) && err.is_input(),
        "{err}"
    );
    assert!(one_line(&err).contains("AWS_ACCESS_KEY_ID"));

    let o = opts(&moto, &bits, "s3://no-such-bucket/x");
    let err = rt().block_on(upload(&o, ctx())).unwrap_err();
    assert!(
        matches!(err, Error::NoBucket { .. }) && err.is_input(),
        "{err}"
    );
    assert!(one_line(&err).contains("no-such-bucket"));

    // Nothing listens on a port we just freed.
    let port = free_port().unwrap();
    let mut o = opts(&moto, &bits, "s3://bits");
    let mut env = moto.env();
    env.push((
        "AWS_ENDPOINT_URL".into(),
        format!("http://127.0.0.1:{port}"),
    ));
    o.s3_env = S3Env::from_pairs(env);
    let err = rt().block_on(upload(&o, ctx())).unwrap_err();
    assert!(
        matches!(err, Error::Remote { .. }) && !err.is_input(),
        "{err}"
    );
    let msg = one_line(&err);
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");

    for bad in ["s3://", "s3://UPPER/x", "ftp://host/x", "file://relative"] {
        let err = Dest::parse(bad).unwrap_err();
        assert!(err.is_input() && one_line(&err).contains("--dest"), "{err}");
    }
    // None of it wrote anything.
    assert!(!bits.join("artifacts.txt").exists());
    assert!(rt().block_on(objects(&client(&moto))).is_empty());
}

#[test]
fn transient_errors_are_retried_and_others_fail_at_once() {
    use common::FlakyProxy;
    use std::sync::atomic::Ordering;

    let Setup {
        moto, tmp, bits, ..
    } = setup(PART_SIZE + 100);

    let via = |proxy: &FlakyProxy| {
        let mut o = opts(&moto, &bits, "s3://bits/flaky");
        let mut env = moto.env();
        env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint()));
        o.s3_env = S3Env::from_pairs(env);
        o
    };

    // Requests 2..=6 (after the bucket check) get 503 SlowDown: retried.
    let proxy = FlakyProxy::start(moto.port, |n, _| {
        (2..=6).contains(&n).then_some((503, "SlowDown"))
    });
    let rep = rt().block_on(upload(&via(&proxy), ctx())).unwrap();
    assert_eq!(rep.stored, 4);
    assert_eq!(proxy.failed.load(Ordering::SeqCst), 5);
    let s3 = client(&moto);
    let got = rt().block_on(objects(&s3));
    for f in make_bits(
        &tmp.path().join("again"),
        "triton-api",
        STAMP,
        PART_SIZE + 100,
    ) {
        let n = f.file_name().unwrap().to_str().unwrap();
        let key = format!("flaky/triton-api/{STAMP}/triton-api/{n}");
        assert_eq!(got[&key].0, md5_hex(&std::fs::read(&f).unwrap()), "{key}");
    }

    // 403 on everything after the bucket check: no retries, one line that
    // names the object and carries the server's answer.
    let bits2 = tmp.path().join("bits2");
    make_bits(&bits2, "triton-api", "master-20261127T000000Z-gabc1234", 10);
    let proxy = FlakyProxy::start(moto.port, |n, _| (n > 1).then_some((403, "AccessDenied")));
    let mut o = via(&proxy);
    o.bits_dir = bits2;
    let err = rt().block_on(upload(&o, ctx())).unwrap_err();
    let msg = err.to_string();
    eprintln!("403 reported as: {msg}");
    assert!(matches!(err, Error::Remote { .. }), "{msg}");
    assert!(
        msg.starts_with("s3://bits/flaky/triton-api/master-20261127T000000Z-gabc1234/"),
        "{msg}"
    );
    assert!(msg.contains("403"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    // The bucket check, plus at most one try per file looked at.
    assert!(proxy.requests.load(Ordering::SeqCst) <= 5, "retried a 403");
}

/// A part the store refuses for good fails the upload at once, in one
/// line naming the object and the part, and the multipart upload is
/// aborted: no parts are left behind on the server.
#[test]
fn a_refused_part_aborts_the_multipart_upload() {
    use common::FlakyProxy;
    use std::sync::atomic::Ordering;

    let Setup {
        moto,
        tmp: _tmp,
        bits,
        ..
    } = setup(2 * PART_SIZE + 100);
    let proxy = FlakyProxy::start(moto.port, |_, line| {
        (line.starts_with("PUT ") && line.contains("partNumber=2&"))
            .then_some((403, "AccessDenied"))
    });
    let mut o = opts(&moto, &bits, "s3://bits/refused");
    let mut env = moto.env();
    env.push(("AWS_ENDPOINT_URL".into(), proxy.endpoint()));
    o.s3_env = S3Env::from_pairs(env);
    let err = rt().block_on(upload(&o, ctx())).unwrap_err();
    let msg = err.to_string();
    eprintln!("refused part reported as: {msg}");
    assert!(matches!(err, Error::Remote { .. }), "{msg}");
    assert!(
        msg.starts_with(&format!(
            "s3://bits/refused/triton-api/{STAMP}/triton-api/triton-api-zfs-"
        )),
        "{msg}"
    );
    assert!(msg.contains("UploadPart 2: 403"), "{msg}");
    assert!(msg.contains("AccessDenied"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert_eq!(proxy.failed.load(Ordering::SeqCst), 1, "a 403 was retried");

    // AbortMultipartUpload went through: moto lists no uploads in progress.
    let answer = moto.raw("GET", &format!("/{BUCKET}?uploads"), "").unwrap();
    assert!(answer.contains("ListMultipartUploadsResult"), "{answer}");
    assert!(!answer.contains("<Upload>"), "{answer}");
}

/// Connections cut at random points of an upload (20 runs, either
/// direction): each run ends, after at most one rerun, with the store
/// identical to an uninterrupted upload, and a run that failed never left
/// the `-latest` pointer behind (pointers are written last).
#[test]
fn cut_connections_then_one_rerun_match_an_uninterrupted_upload() {
    use fault_proxy::{Action, Direction, FaultProxy};

    // Multipart (two parts) plus three single-PUT files.
    let size = PART_SIZE + 4096;
    let Setup {
        moto,
        tmp: _tmp,
        bits,
        ..
    } = setup(size);
    let s3 = client(&moto);

    rt().block_on(upload(&opts(&moto, &bits, "s3://bits/ref"), ctx()))
        .unwrap();
    let strip = |prefix: &str, all: &BTreeMap<String, (String, Option<String>, Option<String>)>| {
        all.iter()
            .filter_map(|(k, (md5, _, _))| {
                k.strip_prefix(&format!("{prefix}/"))
                    .map(|rel| (rel.to_string(), md5.clone()))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let reference = strip("ref", &rt().block_on(objects(&s3)));
    assert_eq!(reference.len(), 6, "{reference:?}");
    let pointer = "triton-api/master-latest";
    let want_pointer_body = |prefix: &str| format!("/{BUCKET}/{prefix}/triton-api/{STAMP}\n");

    let upstream = format!("127.0.0.1:{}", moto.port).parse().unwrap();
    let proxy = FaultProxy::start(upstream).unwrap();
    let mut env = moto.env();
    env.push(("AWS_ENDPOINT_URL".into(), proxy.url()));
    // A fixed seed: a failure names its run, and reruns cut the same way.
    let mut rng = fault_proxy::XorShift(0x5eed_c0ff_ee12_3457);
    let mut failed_runs = 0;
    for run in 0..20 {
        let x = rng.next_u64();
        let (dir, span) = if run % 4 == 3 {
            (Direction::Down, 20_000)
        } else {
            (Direction::Up, size as u64 + 80_000)
        };
        let cut = 1 + x % span;
        let prefix = format!("cut{run}");
        let mut o = opts(&moto, &bits, &format!("s3://bits/{prefix}"));
        o.s3_env = S3Env::from_pairs(env.clone());
        proxy.arm(dir, cut, Action::Reset);
        let first = rt().block_on(upload(&o, ctx()));
        proxy.disarm();
        let stored = rt().block_on(objects(&s3));
        let what = format!("run {run}: cut {dir:?} after {cut} bytes");
        if let Err(e) = first {
            failed_runs += 1;
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "{what}: {msg}");
            assert!(
                !stored.contains_key(&format!("{prefix}/{pointer}")),
                "{what}: pointer written by a failed upload ({msg})"
            );
            rt().block_on(upload(&o, ctx()))
                .unwrap_or_else(|e| panic!("{what}: rerun failed: {e}"));
        }
        let stored = rt().block_on(objects(&s3));
        assert_eq!(
            strip(&prefix, &stored),
            reference_with(&reference, &prefix, pointer, &want_pointer_body),
            "{what}"
        );
    }
    // object_store retries most cuts by itself; either way is fine, but
    // the proxy must really have cut something.
    assert!(proxy.fired() >= 15, "only {} cuts fired", proxy.fired());
    eprintln!("{failed_runs} of 20 cut runs needed a rerun");
}

/// The reference upload's objects as they must look under `prefix`: the
/// same bodies, with the pointer naming this prefix's stamp dir.
fn reference_with(
    reference: &BTreeMap<String, String>,
    prefix: &str,
    pointer: &str,
    body: &dyn Fn(&str) -> String,
) -> BTreeMap<String, String> {
    let mut want = reference.clone();
    want.insert(pointer.to_string(), md5_hex(body(prefix).as_bytes()));
    want
}
