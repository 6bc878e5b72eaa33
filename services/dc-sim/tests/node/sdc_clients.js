// Drives dc-sim with Triton's own Node.js clients (sdc-clients: what
// sdcadm and the headnode tools use), reading {modules, sapi, vmapi, napi,
// papi, cnapi} as JSON on stdin and printing what each call returned.
'use strict';
var path = require('path');

var input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
var sdc = require(path.join(input.modules, 'sdc-clients'));
var bunyan = require(path.join(input.modules, 'bunyan'));
var log = bunyan.createLogger({name: 'crosscheck', level: 'fatal'});

var sapi = new sdc.SAPI({url: input.sapi, version: '~2', log: log, agent: false});
var vmapi = new sdc.VMAPI({url: input.vmapi, log: log, agent: false});
var napi = new sdc.NAPI({url: input.napi, log: log, agent: false});
var papi = new sdc.PAPI({url: input.papi, log: log, agent: false});
var cnapi = new sdc.CNAPI({url: input.cnapi, log: log, agent: false});

var out = {};
function fail(what, err) {
    process.stderr.write(what + ': ' + (err && err.stack || err) + '\n');
    process.exit(1);
}

sapi.listApplications({name: 'sdc'}, function (err, apps) {
    if (err) return fail('listApplications', err);
    out.apps = apps.map(function (a) { return a.name; });
    var app = apps[0];
    sapi.createService('node-made', app.uuid,
        {params: {billing_id: 'x'}, metadata: {FROM: 'node'}},
        function (err2, svc) {
        if (err2) return fail('createService', err2);
        out.created = {name: svc.name, type: svc.type, metadata: svc.metadata};
        sapi.listServices({application_uuid: app.uuid}, function (err3, svcs) {
            if (err3) return fail('listServices', err3);
            out.services = svcs.map(function (s) { return s.name; }).sort();
            sapi.getService('00000000-0000-4000-8000-000000000001',
                function (err4) {
                out.missing = err4 ? {status: err4.statusCode,
                    code: err4.restCode || err4.body && err4.body.code} : null;
                vmapi.listVms({state: 'active'}, function (err5, vms) {
                    if (err5) return fail('listVms', err5);
                    out.vms = vms.map(function (v) { return v.alias; }).sort();
                    napi.listNetworks({name: 'admin'}, function (err6, nets) {
                        if (err6) return fail('listNetworks', err6);
                        out.networks = nets.map(function (n) { return n.name; });
                        papi.list({name: 'sdc_1024'}, {}, function (err7, pkgs) {
                            if (err7) return fail('papi.list', err7);
                            out.packages = pkgs.map(function (p) { return p.name; });
                            cnapi.listServers({headnode: true}, function (err8, srvs) {
                                if (err8) return fail('listServers', err8);
                                out.headnodes = srvs.length;
                                process.stdout.write(JSON.stringify(out));
                                process.exit(0);
                            });
                        });
                    });
                });
            });
        });
    });
});
