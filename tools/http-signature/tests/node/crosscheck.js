// Cross-checks the Rust http-signature crate against Joyent's reference
// implementation (node http-signature + sshpk), both ways.
//
// stdin: {"verify": [{name, publicKey, method, url, headers}],
//         "sign": [{name, privateKey, keyId, date}]}
// stdout: {"verify": [{name, ok, via, error}], "sign": [{name, authorization, error}]}
'use strict';

var fs = require('fs');
var httpSignature = require('http-signature');
var sshpk = require('sshpk');

var input = JSON.parse(fs.readFileSync(0, 'utf8'));

function verify(c) {
  var req = { method: c.method, url: c.url, httpVersion: '1.1', headers: c.headers };
  var key = sshpk.parseKey(c.publicKey, 'ssh');
  var auth = c.headers.authorization;
  // http-signature 1.4.0 knows only sha1/sha256/sha512 and refuses
  // ecdsa-sha384 outright, so that one is parsed under another name and
  // checked with sshpk, the library http-signature itself verifies with.
  var sha384 = /algorithm="ecdsa-sha384"/i.test(auth);
  if (sha384) {
    req.headers = Object.assign({}, c.headers, {
      authorization: auth.replace(/algorithm="ecdsa-sha384"/i, 'algorithm="ecdsa-sha256"')
    });
  }
  var parsed = httpSignature.parseRequest(req, {});
  if (sha384) {
    var v = key.createVerify('sha384');
    v.update(parsed.signingString);
    return { ok: v.verify(parsed.params.signature, 'base64'), via: 'sshpk' };
  }
  return { ok: httpSignature.verifySignature(parsed, key), via: 'http-signature' };
}

function sign(c) {
  var headers = { date: c.date };
  var req = {
    method: 'GET',
    path: '/images',
    getHeader: function (n) { return headers[n.toLowerCase()]; },
    setHeader: function (n, v) { headers[n.toLowerCase()] = v; }
  };
  var ok = httpSignature.sign(req, {
    key: sshpk.parsePrivateKey(c.privateKey, 'auto'),
    keyId: c.keyId,
    headers: ['date']
  });
  if (!ok)
    throw new Error('http-signature did not sign');
  return { authorization: headers.authorization };
}

function each(list, fn) {
  return (list || []).map(function (c) {
    try {
      return Object.assign({ name: c.name }, fn(c));
    } catch (e) {
      return { name: c.name, ok: false, error: e.name + ': ' + e.message };
    }
  });
}

process.stdout.write(JSON.stringify({
  verify: each(input.verify, verify),
  sign: each(input.sign, sign)
}) + '\n');
