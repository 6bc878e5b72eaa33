// Drives imgapi-server with Triton's own IMGAPI client (sdc-clients), as
// updates-imgadm and sdcadm do. Input (stdin, JSON):
//   {"url": ..., "mode": "import", "images": [{"manifest": {...}, "file": PATH}],
//    "out_dir": DIR, "missing": UUID}
//   {"url": ..., "mode": "get-file", "uuid": UUID, "out": PATH}
// Output (stdout, JSON): what each call returned, or its error as the
// client reports it ({code, restCode, statusCode, message}). Client errors
// are data here: the Rust test decides what is right.
'use strict';

var path = require('path');
var IMGAPI = require('sdc-clients').IMGAPI;

function errInfo(err, res) {
    return {
        code: err.code || null,
        restCode: err.restCode || (err.body && err.body.code) || null,
        statusCode: (res && res.statusCode) || err.statusCode || null,
        name: err.name || null,
        message: err.message
    };
}

function readInput(cb) {
    var chunks = [];
    process.stdin.on('data', function (c) { chunks.push(c); });
    process.stdin.on('end', function () {
        cb(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    });
}

function importAll(client, input, done) {
    var out = {images: []};
    var i = 0;
    function next() {
        if (i === input.images.length) {
            afterImports();
            return;
        }
        var img = input.images[i++];
        var m = img.manifest;
        var rec = {uuid: m.uuid};
        out.images.push(rec);
        client.adminImportImage(m, {}, function (err, image) {
            if (err) {
                rec.import = {error: errInfo(err)};
                next();
                return;
            }
            rec.import = {state: image.state};
            client.addImageFile({
                uuid: m.uuid,
                file: img.file,
                compression: m.files[0].compression,
                sha1: m.files[0].sha1,
                size: m.files[0].size
            }, function (fErr, fImage, fRes) {
                if (fErr) {
                    rec.addFile = {error: errInfo(fErr, fRes)};
                    next();
                    return;
                }
                rec.addFile = {files: fImage.files};
                client.activateImage(m.uuid, function (aErr, aImage) {
                    rec.activate = aErr ? {error: errInfo(aErr)} :
                        {state: aImage.state};
                    next();
                });
            });
        });
    }

    function afterImports() {
        client.listImages({state: 'all'}, function (lErr, images) {
            out.list = lErr ? {error: errInfo(lErr)} : images;
            var first = input.images[0].manifest.uuid;
            client.getImage(first, function (gErr, image) {
                out.get = gErr ? {error: errInfo(gErr)} : image;
                client.getImage(input.missing, function (mErr, mImage, mRes) {
                    out.missing = mErr ? {error: errInfo(mErr, mRes)} :
                        {unexpected: mImage};
                    getFiles(0);
                });
            });
        });
    }

    function getFiles(j) {
        if (j === input.images.length) {
            done(out);
            return;
        }
        var uuid = input.images[j].manifest.uuid;
        var dest = path.join(input.out_dir, uuid);
        client.getImageFile(uuid, dest, function (err, res) {
            out.images[j].getFile = err ? {error: errInfo(err, res)} :
                {path: dest, contentMD5: res.headers['content-md5']};
            getFiles(j + 1);
        });
    }

    next();
}

readInput(function (input) {
    var client = new IMGAPI({url: input.url});
    function finish(out) {
        client.close();
        process.stdout.write(JSON.stringify(out) + '\n');
    }
    if (input.mode === 'import') {
        importAll(client, input, finish);
    } else if (input.mode === 'get-file') {
        client.getImageFile(input.uuid, input.out, function (err, res) {
            finish(err ? {error: errInfo(err, res)} : {path: input.out});
        });
    } else {
        throw new Error('unknown mode ' + input.mode);
    }
});
