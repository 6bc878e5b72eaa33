//! The Dropshot trait for IMGAPI and its restify-style errors.

use dropshot::{
    Body, HttpResponseDeleted, HttpResponseOk, Path, Query, RequestContext, StreamingBody,
    UntypedBody,
};

use crate::*;

// ---------------------------------------------------------------------------
// Errors

/// IMGAPI's errors are restify-style bodies (`{"code", "message"}`) with
/// sdc-imgapi's codes (`ResourceNotFound`, `ValidationFailed`, ...).
pub use restify_error::RestError as ImgapiError;

// ---------------------------------------------------------------------------
// The API

#[dropshot::api_description]
pub trait ImgapiApi {
    type Context: Send + Sync + 'static;

    /// Ping: liveness; `?error=<Code>` simulates that error response.
    #[endpoint { method = GET, path = "/ping" }]
    async fn ping(
        rqctx: RequestContext<Self::Context>,
        query: Query<PingQuery>,
    ) -> Result<HttpResponseOk<PingResponse>, ImgapiError>;

    /// ListImages. Without filters: the active images of the default
    /// channel. `tag.<key>=<value>` query parameters filter on tags.
    #[endpoint { method = GET, path = "/images" }]
    async fn list_images(
        rqctx: RequestContext<Self::Context>,
        query: Query<ListImagesQuery>,
    ) -> Result<HttpResponseOk<Vec<Image>>, ImgapiError>;

    /// GetImage.
    #[endpoint { method = GET, path = "/images/{uuid}" }]
    async fn get_image(
        rqctx: RequestContext<Self::Context>,
        path: Path<ImagePath>,
        query: Query<ChannelQuery>,
    ) -> Result<HttpResponseOk<Image>, ImgapiError>;

    /// GetImageFile: the (large) file, streamed.
    #[endpoint { method = GET, path = "/images/{uuid}/file" }]
    async fn get_image_file(
        rqctx: RequestContext<Self::Context>,
        path: Path<ImagePath>,
        query: Query<GetImageFileQuery>,
    ) -> Result<http::Response<Body>, ImgapiError>;

    /// CreateImage: a new unactivated image with a server-assigned uuid.
    #[endpoint { method = POST, path = "/images" }]
    async fn create_image(
        rqctx: RequestContext<Self::Context>,
        query: Query<ChannelQuery>,
        body: dropshot::TypedBody<CreateImageBody>,
    ) -> Result<HttpResponseOk<Image>, ImgapiError>;

    /// `POST /images/:uuid?action=...`: AdminImportImage (`import`),
    /// AdminImportRemoteImage (`import-remote`), ActivateImage, DisableImage,
    /// EnableImage, UpdateImage and ChannelAddImage.
    ///
    /// IMGAPI routes these on the value of `action`; Dropshot routes on
    /// method and path only, so this is one endpoint whose query names the
    /// action and whose JSON body (empty for activate/enable/disable and
    /// import-remote) is read per action: the manifest for `import`, the
    /// fields to change for `update`, `{"channel": ...}` for `channel-add`.
    /// The body is untyped so that an empty one is accepted, as restify does.
    #[endpoint { method = POST, path = "/images/{uuid}" }]
    async fn image_action(
        rqctx: RequestContext<Self::Context>,
        path: Path<ImagePath>,
        query: Query<ImageActionQuery>,
        body: UntypedBody,
    ) -> Result<HttpResponseOk<ImageActionResponse>, ImgapiError>;

    /// AddImageFile: stream the file; checked against `sha1` and `size`
    /// when given. Only for images not yet activated.
    #[endpoint {
        method = PUT,
        path = "/images/{uuid}/file",
        request_body_max_bytes = 21474836480,
    }]
    async fn add_image_file(
        rqctx: RequestContext<Self::Context>,
        path: Path<ImagePath>,
        query: Query<AddImageFileQuery>,
        body: StreamingBody,
    ) -> Result<HttpResponseOk<Image>, ImgapiError>;

    /// DeleteImage: remove from the channel; delete when in none. 204.
    #[endpoint { method = DELETE, path = "/images/{uuid}" }]
    async fn delete_image(
        rqctx: RequestContext<Self::Context>,
        path: Path<ImagePath>,
        query: Query<DeleteImageQuery>,
    ) -> Result<HttpResponseDeleted, ImgapiError>;

    /// ListChannels.
    #[endpoint { method = GET, path = "/channels" }]
    async fn list_channels(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<Vec<Channel>>, ImgapiError>;
}
