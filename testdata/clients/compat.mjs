// compat.mjs drives a FHIR R4 server with three independently written
// JavaScript clients, fhir-kit-client, fhirclient and Medplum's
// MedplumClient, each through the interactions it offers, and prints a JSON
// report on stdout:
//
//	{"clients": {"fhir-kit-client": "2.0.3", ...},
//	 "checks": [{"client": "...", "check": "metadata", "ok": true, "detail": "..."}]}
//
// Usage: node compat.mjs http://127.0.0.1:8080/fhir
//
// Every call goes through the client's own API (its create, patch,
// transaction, next-page call and so on); the script only inspects what the
// client hands back. A check that throws is reported as failed with the
// error and, when the server answered, its status and body.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { Client as KitClient } from 'fhir-kit-client';
import { MedplumClient } from '@medplum/core';

const require = createRequire(import.meta.url);
const smart = require('fhirclient');

const base = process.argv[2];
if (!base) {
	console.error('usage: node compat.mjs BASE_URL');
	process.exit(2);
}

function versionOf(pkg) {
	const path = new URL(`./node_modules/${pkg}/package.json`, import.meta.url);
	return JSON.parse(readFileSync(path, 'utf8')).version;
}

const report = {
	clients: {
		'fhir-kit-client': versionOf('fhir-kit-client'),
		fhirclient: versionOf('fhirclient'),
		'@medplum/core': versionOf('@medplum/core'),
	},
	checks: [],
};

async function check(client, name, fn) {
	try {
		const detail = await fn();
		report.checks.push({ client, check: name, ok: true, detail: detail || '' });
	} catch (err) {
		let detail = String(err && err.message ? err.message : err);
		const data = err && err.response && err.response.data;
		if (data) detail += ': ' + JSON.stringify(data).slice(0, 600);
		if (err && err.status) detail += ` (status ${err.status})`;
		if (err && err.outcome) detail += ': ' + JSON.stringify(err.outcome).slice(0, 600);
		report.checks.push({ client, check: name, ok: false, detail });
	}
}

function expect(cond, msg) {
	if (!cond) throw new Error(msg);
}

function patient(family, extra = {}) {
	return { resourceType: 'Patient', name: [{ family, given: ['Ann'] }], gender: 'female', ...extra };
}

// errorIssues counts the issues of severity error or fatal.
function errorIssues(oo) {
	return (oo.issue || []).filter((i) => i.severity === 'error' || i.severity === 'fatal').length;
}

// A transaction that creates a Patient and an Observation about it, the
// Observation pointing at the Patient by its temporary urn:uuid.
function transactionBundle(family) {
	const pid = 'urn:uuid:0f3c1d2e-8b7a-4c61-9e55-3a1b2c3d4e5f';
	return {
		resourceType: 'Bundle',
		type: 'transaction',
		entry: [
			{ fullUrl: pid, resource: patient(family), request: { method: 'POST', url: 'Patient' } },
			{
				resource: {
					resourceType: 'Observation',
					status: 'final',
					code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
					subject: { reference: pid },
					valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
				},
				request: { method: 'POST', url: 'Observation' },
			},
		],
	};
}

function batchBundle(family) {
	return {
		resourceType: 'Bundle',
		type: 'batch',
		entry: [
			{ resource: patient(family), request: { method: 'POST', url: 'Patient' } },
			{ request: { method: 'GET', url: 'Patient/does-not-exist' } },
			{ request: { method: 'GET', url: `Patient?family=${family}` } },
		],
	};
}

// pagingBundle creates n Patients of one family in a transaction.
function pagingBundle(family, n) {
	const entry = [];
	for (let i = 0; i < n; i++) {
		entry.push({ resource: patient(family, { birthDate: `1970-01-${String(i + 1).padStart(2, '0')}` }), request: { method: 'POST', url: 'Patient' } });
	}
	return { resourceType: 'Bundle', type: 'transaction', entry };
}

const invalidPatient = { resourceType: 'Patient', gender: 'not-a-gender' };

function checkBatchResponse(b) {
	expect(b.resourceType === 'Bundle' && b.type === 'batch-response', `got ${b.resourceType} ${b.type}`);
	const st = (b.entry || []).map((e) => e.response && e.response.status);
	expect(st.length === 3, `want 3 entries, got ${st.length}`);
	expect(st[0].startsWith('201'), `entry 1 status ${st[0]}, want 201`);
	expect(st[1].startsWith('404'), `entry 2 status ${st[1]}, want 404`);
	expect(st[2].startsWith('200'), `entry 3 status ${st[2]}, want 200`);
	return st.join(', ');
}

// checkTransactionResponse returns the ids of the created Patient and
// Observation.
function checkTransactionResponse(b) {
	expect(b.resourceType === 'Bundle' && b.type === 'transaction-response', `got ${b.resourceType} ${b.type}`);
	const loc = (b.entry || []).map((e) => e.response && e.response.location);
	expect(loc.length === 2, `want 2 entries, got ${loc.length}`);
	expect(/^Patient\/[^/]+/.test(loc[0]) || /\/Patient\/[^/]+/.test(loc[0]), `entry 1 location ${loc[0]}`);
	const pid = loc[0].match(/Patient\/([^/]+)/)[1];
	const oid = loc[1].match(/Observation\/([^/]+)/)[1];
	return { pid, oid };
}

function checkIncludeBundle(b, pid) {
	expect(b.resourceType === 'Bundle' && b.type === 'searchset', `got ${b.resourceType} ${b.type}`);
	const modes = (b.entry || []).map((e) => `${e.resource.resourceType}:${e.search && e.search.mode}`);
	expect(modes.includes('Observation:match'), `no matched Observation in ${modes}`);
	const inc = (b.entry || []).find((e) => e.resource.resourceType === 'Patient');
	expect(inc && inc.resource.id === pid && inc.search.mode === 'include', `Patient/${pid} not included: ${modes}`);
	return modes.join(', ');
}

async function fhirKit() {
	const name = 'fhir-kit-client';
	const c = new KitClient({ baseUrl: base });
	const family = 'Kitfamily';
	let id;

	await check(name, 'metadata', async () => {
		const cs = await c.capabilityStatement();
		expect(cs.resourceType === 'CapabilityStatement', `got ${cs.resourceType}`);
		expect(cs.fhirVersion === '4.0.1', `fhirVersion ${cs.fhirVersion}`);
		return `fhirVersion ${cs.fhirVersion}, ${cs.rest[0].resource.length} resource types`;
	});
	await check(name, 'create', async () => {
		const p = await c.create({ resourceType: 'Patient', body: patient(family) });
		const res = KitClient.httpFor(p).response;
		expect(res.status === 201, `status ${res.status}`);
		expect(p.id && p.meta && p.meta.versionId === '1', `id ${p.id} versionId ${p.meta && p.meta.versionId}`);
		expect((res.headers.get('location') || '').includes(`Patient/${p.id}/_history/1`), `Location ${res.headers.get('location')}`);
		id = p.id;
		return `Patient/${id}, Location ${res.headers.get('location')}`;
	});
	await check(name, 'read', async () => {
		const p = await c.read({ resourceType: 'Patient', id });
		expect(p.name[0].family === family, `family ${p.name[0].family}`);
		const etag = KitClient.httpFor(p).response.headers.get('etag');
		expect(etag === 'W/"1"', `ETag ${etag}`);
		return `ETag ${etag}`;
	});
	await check(name, 'update', async () => {
		const p = await c.update({ resourceType: 'Patient', id, body: { ...patient(family), id, birthDate: '1980-02-03' } });
		expect(p.meta.versionId === '2', `versionId ${p.meta.versionId}`);
		return `versionId ${p.meta.versionId}`;
	});
	await check(name, 'conditional create', async () => {
		const body = patient(family, { identifier: [{ system: 'https://example.org/kit', value: 'k-1' }] });
		const opts = { headers: { 'If-None-Exist': 'identifier=https://example.org/kit|k-1' } };
		const first = await c.create({ resourceType: 'Patient', body, options: opts });
		const second = await c.create({ resourceType: 'Patient', body, options: opts });
		const s1 = KitClient.httpFor(first).response.status;
		const s2 = KitClient.httpFor(second).response.status;
		expect(s1 === 201 && s2 === 200, `statuses ${s1}, ${s2}, want 201, 200`);
		expect(first.id === second.id, `ids ${first.id} and ${second.id}`);
		return `201 then 200 with the same id`;
	});
	await check(name, 'JSON Patch', async () => {
		await c.patch({ resourceType: 'Patient', id, jsonPatch: [{ op: 'replace', path: '/birthDate', value: '1981-04-05' }] });
		const p = await c.read({ resourceType: 'Patient', id });
		expect(p.birthDate === '1981-04-05' && p.meta.versionId === '3', `birthDate ${p.birthDate} versionId ${p.meta.versionId}`);
		return `versionId ${p.meta.versionId}`;
	});
	await check(name, 'history', async () => {
		const h = await c.history({ resourceType: 'Patient', id });
		expect(h.type === 'history', `type ${h.type}`);
		const v = h.entry.map((e) => e.resource.meta.versionId);
		expect(v.join() === '3,2,1', `versions ${v}`);
		return `versions ${v}`;
	});
	await check(name, 'batch', async () => checkBatchResponse(await c.batch({ body: batchBundle(family) })));
	let tx;
	await check(name, 'transaction', async () => {
		tx = checkTransactionResponse(await c.transaction({ body: transactionBundle(family) }));
		const o = await c.read({ resourceType: 'Observation', id: tx.oid });
		expect(o.subject.reference === `Patient/${tx.pid}`, `subject ${o.subject.reference}`);
		return `Observation/${tx.oid} subject Patient/${tx.pid}`;
	});
	await check(name, 'search _include', async () => {
		expect(tx, 'no transaction to search');
		const b = await c.search({ resourceType: 'Observation', searchParams: { subject: `Patient/${tx.pid}`, _include: 'Observation:subject' } });
		return checkIncludeBundle(b, tx.pid);
	});
	await check(name, 'paging with nextPage', async () => {
		await c.transaction({ body: pagingBundle('Kitpages', 7) });
		let page = await c.search({ resourceType: 'Patient', searchParams: { family: 'Kitpages', _count: 3 } });
		const ids = new Set();
		let pages = 0;
		while (page) {
			pages++;
			expect(pages <= 5, 'more than 5 pages');
			for (const e of page.entry || []) ids.add(e.resource.id);
			page = await c.nextPage({ bundle: page });
		}
		expect(pages === 3 && ids.size === 7, `${pages} pages, ${ids.size} distinct Patients; want 3 and 7`);
		return `${pages} pages, ${ids.size} Patients`;
	});
	await check(name, '$validate', async () => {
		const ok = await c.operation({ name: '$validate', resourceType: 'Patient', input: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: patient(family) }] } });
		expect(ok.resourceType === 'OperationOutcome' && errorIssues(ok) === 0, `valid Patient: ${JSON.stringify(ok)}`);
		const bad = await c.operation({ name: '$validate', resourceType: 'Patient', input: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: invalidPatient }] } });
		expect(bad.resourceType === 'OperationOutcome' && errorIssues(bad) > 0, `invalid Patient: ${JSON.stringify(bad)}`);
		return `valid: no errors; invalid: ${errorIssues(bad)} error(s)`;
	});
	await check(name, 'delete', async () => {
		await c.delete({ resourceType: 'Patient', id });
		try {
			await c.read({ resourceType: 'Patient', id });
		} catch (err) {
			expect(err.response && err.response.status === 410, `read after delete: ${err.message}`);
			return 'read after delete: 410';
		}
		throw new Error('read after delete succeeded');
	});
}

async function fhirclient() {
	const name = 'fhirclient';
	const c = new smart.FhirClient(base);
	const family = 'Smartfamily';
	const json = { 'content-type': 'application/fhir+json' };
	let id;

	await check(name, 'metadata', async () => {
		const cs = await c.fhirRequest('metadata');
		expect(cs.resourceType === 'CapabilityStatement', `got ${cs.resourceType}`);
		const v = await c.getFhirVersion();
		const r = await c.getFhirRelease();
		expect(v === '4.0.1' && r === 4, `getFhirVersion ${v}, getFhirRelease ${r}`);
		return `getFhirVersion ${v}, getFhirRelease ${r}`;
	});
	await check(name, 'create', async () => {
		const { body: p, response } = await c.create(patient(family), { includeResponse: true });
		expect(response.status === 201, `status ${response.status}`);
		expect(p.id && p.meta.versionId === '1', `id ${p.id}`);
		id = p.id;
		return `Patient/${id}, Location ${response.headers.get('location')}`;
	});
	await check(name, 'read', async () => {
		const p = await c.fhirRequest(`Patient/${id}`);
		expect(p.name[0].family === family, `family ${p.name[0].family}`);
		return `Patient/${id}`;
	});
	await check(name, 'update', async () => {
		const p = await c.update({ ...patient(family), id, birthDate: '1980-02-03' });
		expect(p.meta.versionId === '2', `versionId ${p.meta.versionId}`);
		return `versionId ${p.meta.versionId}`;
	});
	await check(name, 'conditional create', async () => {
		const body = patient(family, { identifier: [{ system: 'https://example.org/smart', value: 's-1' }] });
		const opts = { includeResponse: true, headers: { 'If-None-Exist': 'identifier=https://example.org/smart|s-1' } };
		const first = await c.create(body, opts);
		const second = await c.create(body, opts);
		expect(first.response.status === 201 && second.response.status === 200, `statuses ${first.response.status}, ${second.response.status}, want 201, 200`);
		expect(first.body.id === second.body.id, `ids ${first.body.id} and ${second.body.id}`);
		return '201 then 200 with the same id';
	});
	await check(name, 'JSON Patch', async () => {
		const p = await c.patch(`Patient/${id}`, [{ op: 'replace', path: '/birthDate', value: '1981-04-05' }]);
		expect(p.birthDate === '1981-04-05' && p.meta.versionId === '3', `birthDate ${p.birthDate} versionId ${p.meta && p.meta.versionId}`);
		return `versionId ${p.meta.versionId}`;
	});
	await check(name, 'history', async () => {
		const h = await c.fhirRequest(`Patient/${id}/_history`);
		expect(h.type === 'history', `type ${h.type}`);
		const v = h.entry.map((e) => e.resource.meta.versionId);
		expect(v.join() === '3,2,1', `versions ${v}`);
		return `versions ${v}`;
	});
	// fhirclient has no batch or transaction call: a Bundle is posted to the
	// base with fhirRequest(""), which it sends to BASE/ (with the slash).
	await check(name, 'batch', async () => checkBatchResponse(await c.fhirRequest('', { method: 'POST', headers: json, body: JSON.stringify(batchBundle(family)) })));
	let tx;
	await check(name, 'transaction', async () => {
		tx = checkTransactionResponse(await c.fhirRequest('', { method: 'POST', headers: json, body: JSON.stringify(transactionBundle(family)) }));
		const o = await c.fhirRequest(`Observation/${tx.oid}`);
		expect(o.subject.reference === `Patient/${tx.pid}`, `subject ${o.subject.reference}`);
		return `Observation/${tx.oid} subject Patient/${tx.pid}`;
	});
	await check(name, 'search _include', async () => {
		expect(tx, 'no transaction to search');
		const b = await c.fhirRequest(`Observation?subject=Patient/${tx.pid}&_include=Observation:subject`);
		return checkIncludeBundle(b, tx.pid);
	});
	await check(name, 'paging with pages()', async () => {
		await c.fhirRequest('', { method: 'POST', headers: json, body: JSON.stringify(pagingBundle('Smartpages', 7)) });
		const ids = new Set();
		let pages = 0;
		for await (const page of c.pages('Patient?family=Smartpages&_count=3')) {
			pages++;
			expect(pages <= 5, 'more than 5 pages');
			for (const e of page.entry || []) ids.add(e.resource.id);
		}
		expect(pages === 3 && ids.size === 7, `${pages} pages, ${ids.size} distinct Patients; want 3 and 7`);
		return `${pages} pages, ${ids.size} Patients`;
	});
	await check(name, '$validate', async () => {
		const post = (resource) => c.fhirRequest('Patient/$validate', { method: 'POST', headers: json, body: JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'resource', resource }] }) });
		const ok = await post(patient(family));
		expect(ok.resourceType === 'OperationOutcome' && errorIssues(ok) === 0, `valid Patient: ${JSON.stringify(ok)}`);
		const bad = await post(invalidPatient);
		expect(bad.resourceType === 'OperationOutcome' && errorIssues(bad) > 0, `invalid Patient: ${JSON.stringify(bad)}`);
		return `valid: no errors; invalid: ${errorIssues(bad)} error(s)`;
	});
	await check(name, 'delete', async () => {
		await c.delete(`Patient/${id}`);
		try {
			await c.fhirRequest(`Patient/${id}`);
		} catch (err) {
			expect(err.status === 410, `read after delete: ${err.message}`);
			return 'read after delete: 410';
		}
		throw new Error('read after delete succeeded');
	});
}

async function medplum() {
	const name = '@medplum/core';
	// MedplumClient takes the server's root and the path of the FHIR base
	// under it; without a login it sends no Authorization header.
	const u = new URL(base);
	const c = new MedplumClient({ baseUrl: u.origin + '/', fhirUrlPath: u.pathname.replace(/^\/+|\/+$/g, '') });
	const family = 'Medplumfamily';
	let id;

	await check(name, 'metadata', async () => {
		const cs = await c.get(c.fhirUrl('metadata'));
		expect(cs.resourceType === 'CapabilityStatement' && cs.fhirVersion === '4.0.1', `got ${cs.resourceType} ${cs.fhirVersion}`);
		return `fhirVersion ${cs.fhirVersion}`;
	});
	await check(name, 'create', async () => {
		const p = await c.createResource(patient(family));
		expect(p.id && p.meta.versionId === '1', `id ${p.id} versionId ${p.meta && p.meta.versionId}`);
		id = p.id;
		return `Patient/${id}`;
	});
	await check(name, 'read', async () => {
		const p = await c.readResource('Patient', id);
		expect(p.name[0].family === family, `family ${p.name[0].family}`);
		return `Patient/${id}`;
	});
	await check(name, 'update', async () => {
		const p = await c.updateResource({ ...patient(family), id, birthDate: '1980-02-03' });
		expect(p.meta.versionId === '2', `versionId ${p.meta.versionId}`);
		return `versionId ${p.meta.versionId}`;
	});
	await check(name, 'conditional create', async () => {
		const body = patient(family, { identifier: [{ system: 'https://example.org/medplum', value: 'm-1' }] });
		const first = await c.createResourceIfNoneExist(body, 'identifier=https://example.org/medplum|m-1');
		const second = await c.createResourceIfNoneExist(body, 'identifier=https://example.org/medplum|m-1');
		expect(first.id === second.id && second.meta.versionId === '1', `ids ${first.id} and ${second.id}`);
		return 'the same Patient twice';
	});
	await check(name, 'JSON Patch', async () => {
		const p = await c.patchResource('Patient', id, [{ op: 'replace', path: '/birthDate', value: '1981-04-05' }]);
		expect(p.birthDate === '1981-04-05' && p.meta.versionId === '3', `birthDate ${p.birthDate} versionId ${p.meta && p.meta.versionId}`);
		return `versionId ${p.meta.versionId}`;
	});
	await check(name, 'history', async () => {
		const h = await c.readHistory('Patient', id);
		expect(h.type === 'history', `type ${h.type}`);
		const v = h.entry.map((e) => e.resource.meta.versionId);
		expect(v.join() === '3,2,1', `versions ${v}`);
		const first = await c.readVersion('Patient', id, '1');
		expect(first.meta.versionId === '1' && !first.birthDate, `version 1: ${JSON.stringify(first)}`);
		return `versions ${v}; version 1 read`;
	});
	// executeBatch posts a batch or transaction Bundle to the FHIR base.
	await check(name, 'batch', async () => checkBatchResponse(await c.executeBatch(batchBundle(family))));
	let tx;
	await check(name, 'transaction', async () => {
		tx = checkTransactionResponse(await c.executeBatch(transactionBundle(family)));
		const o = await c.readResource('Observation', tx.oid);
		expect(o.subject.reference === `Patient/${tx.pid}`, `subject ${o.subject.reference}`);
		return `Observation/${tx.oid} subject Patient/${tx.pid}`;
	});
	await check(name, 'search _include', async () => {
		expect(tx, 'no transaction to search');
		const b = await c.search('Observation', { subject: `Patient/${tx.pid}`, _include: 'Observation:subject' });
		return checkIncludeBundle(b, tx.pid);
	});
	await check(name, 'paging with searchResourcePages', async () => {
		await c.executeBatch(pagingBundle('Medplumpages', 7));
		const ids = new Set();
		let pages = 0;
		for await (const page of c.searchResourcePages('Patient', { family: 'Medplumpages', _count: 3 })) {
			pages++;
			expect(pages <= 5, 'more than 5 pages');
			for (const r of page) ids.add(r.id);
		}
		expect(pages === 3 && ids.size === 7, `${pages} pages, ${ids.size} distinct Patients; want 3 and 7`);
		return `${pages} pages, ${ids.size} Patients`;
	});
	await check(name, '$validate', async () => {
		// validateResource posts the resource itself, not Parameters.
		const ok = await c.validateResource(patient(family));
		expect(ok.resourceType === 'OperationOutcome' && errorIssues(ok) === 0, `valid Patient: ${JSON.stringify(ok)}`);
		const bad = await c.validateResource(invalidPatient);
		expect(bad.resourceType === 'OperationOutcome' && errorIssues(bad) > 0, `invalid Patient: ${JSON.stringify(bad)}`);
		return `valid: no errors; invalid: ${errorIssues(bad)} error(s)`;
	});
	await check(name, 'delete', async () => {
		await c.deleteResource('Patient', id);
		try {
			await c.readResource('Patient', id);
		} catch (err) {
			expect(err.outcome && err.outcome.issue[0].code === 'deleted', `read after delete: ${err.message}`);
			return 'read after delete: deleted';
		}
		throw new Error('read after delete succeeded');
	});
}

await fhirKit();
await fhirclient();
await medplum();
process.stdout.write(JSON.stringify(report, null, 1) + '\n');
