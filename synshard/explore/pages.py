"""The explorer's Jinja templates (autoescaped: every value from a release is escaped).

Kept as strings in a module so they ship with the package without package-data rules. The pages
need nothing from the network: scripts are inline or served by the explorer itself.
"""
from __future__ import annotations

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{% block title %}{{ release }}{% endblock %} · synshard explorer</title>
<style>
 body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
 header{background:#1f3a5f;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
 header a{color:#fff;text-decoration:none;font-weight:600}
 header form{margin-left:auto} header input{padding:4px 8px;width:260px}
 main{padding:12px 16px} a{color:#1d5fa8}
 .crumbs{color:#666;margin-bottom:8px} .gloss{color:#555;font-style:italic}
 .cols{display:flex;gap:16px;align-items:flex-start}
 .tree{min-width:360px;max-width:480px;background:#fff;border:1px solid #ddd;padding:8px}
 .tree ul{list-style:none;padding-left:18px;margin:0} .tree>ul{padding-left:0}
 .tree li{margin:2px 0} .tree button{width:22px;border:0;background:none;cursor:pointer}
 .count{color:#777;font-size:12px}
 #treemap{flex:1;min-height:560px;background:#fff;border:1px solid #ddd}
 .grid{display:flex;flex-wrap:wrap;gap:6px}
 .grid a{display:block;width:164px;height:164px;background:#eee;text-align:center}
 .grid img{max-width:160px;max-height:160px;margin-top:2px}
 table{border-collapse:collapse;background:#fff;margin:6px 0 14px}
 td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
 .figure{position:relative;display:inline-block} .figure img{display:block;max-width:100%}
 .figure svg{position:absolute;left:0;top:0;width:100%;height:100%}
 .pager a,.pager span{margin-right:8px} .mono{font-family:monospace}
</style></head><body>
<header><a href="/">synshard explorer</a><span>{{ release }}</span>
<form action="/search"><input name="q" placeholder="search a word or a key" aria-label="search">
</form></header>
<main>{% block body %}{% endblock %}</main></body></html>"""

CRUMBS = """<div class="crumbs">{% for c in path %}<a href="/?root={{ c.wnid }}">{{ c.lemma }}</a>
{% if not loop.last %} › {% endif %}{% endfor %}</div>"""

TREE = """{% extends "base.html" %}{% block body %}
{% set path = node.path %}{% include "crumbs.html" %}
<h2>{{ node.lemma }} <span class="count">{{ node.wnid }}</span></h2>
<p class="gloss">{{ node.gloss }}</p>
<p>{{ "{:,}".format(node.images) }} images, {{ "{:,}".format(node.synsets_with_images) }}
synsets with images below. <a href="/synset/{{ node.wnid }}">Open this synset</a></p>
<div class="cols"><div class="tree" id="tree"><ul>
{% for c in node.children %}{% include "node.html" %}{% endfor %}</ul></div>
<div id="treemap" data-root="{{ node.wnid }}"></div></div>
<script>
function item(c){
  const li=document.createElement('li'); li.dataset.wnid=c.wnid;
  const b=document.createElement('button'); b.className='toggle';
  b.textContent=c.has_children?'▸':'·'; if(c.has_children) b.onclick=()=>toggle(li,b);
  const a=document.createElement('a'); a.href='/synset/'+c.wnid; a.textContent=c.lemma;
  a.title=c.gloss;
  const s=document.createElement('span'); s.className='count';
  s.textContent=` ${c.images.toLocaleString()} images · ${c.synsets_with_images} synsets`;
  const t=document.createElement('a'); t.href='/?root='+c.wnid; t.textContent=' ⤢';
  t.title='treemap of this subtree'; li.append(b,a,s,t); return li;
}
async function toggle(li,b){
  const open=li.querySelector('ul');
  if(open){open.remove(); b.textContent='▸'; return;}
  const r=await fetch('/api/tree?root='+encodeURIComponent(li.dataset.wnid));
  if(!r.ok) return;
  const node=await r.json(); const ul=document.createElement('ul');
  node.children.forEach(c=>ul.append(item(c))); li.append(ul); b.textContent='▾';
  drawTreemap(li.dataset.wnid);
}
document.querySelectorAll('#tree li').forEach(li=>{
  const b=li.querySelector('button'); if(li.dataset.kids==='1') b.onclick=()=>toggle(li,b);});
async function drawTreemap(root){
  if(typeof Plotly==='undefined') return;
  const r=await fetch('/api/treemap?root='+encodeURIComponent(root)); if(!r.ok) return;
  const n=await r.json();
  Plotly.react('treemap',[{type:'treemap',ids:n.map(x=>x.id),parents:n.map(x=>x.parent),
    labels:n.map(x=>x.label),values:n.map(x=>x.value),branchvalues:'total',maxdepth:3,
    textinfo:'label+value',hovertemplate:'<b>%{label}</b> (%{id})<br>%{value:,} images<extra></extra>'}],
    {margin:{t:10,l:10,r:10,b:10},height:560},{displaylogo:false,responsive:true});
  const el=document.getElementById('treemap');
  if(!el.dataset.bound){el.dataset.bound='1';
    el.on('plotly_click',d=>{const p=d.points&&d.points[0];
      if(p&&p.id&&!p.id.startsWith('unknown')){window.location='/synset/'+p.id;} return false;});}
}
</script>
<script src="/static/plotly.min.js" onload="drawTreemap(document.getElementById('treemap').dataset.root)"></script>
{% endblock %}"""

NODE = """<li data-wnid="{{ c.wnid }}" data-kids="{{ 1 if c.has_children else 0 }}">
<button class="toggle">{{ '▸' if c.has_children else '·' }}</button><a href="/synset/{{ c.wnid }}"
 title="{{ c.gloss }}">{{ c.lemma }}</a><span class="count"> {{ "{:,}".format(c.images) }} images
· {{ c.synsets_with_images }} synsets</span><a href="/?root={{ c.wnid }}" title="treemap of this
 subtree"> ⤢</a></li>"""

SYNSET = """{% extends "base.html" %}{% block title %}{{ s.lemma }}{% endblock %}{% block body %}
{% set path = s.path %}{% include "crumbs.html" %}
<h2>{{ s.lemma }} <span class="count mono">{{ s.wnid }}</span></h2>
<p class="gloss">{{ s.gloss }}</p>
<p>{{ s.lemmas|join(", ") }}</p>
<table id="splits"><tr><th>split</th><th>images</th></tr>
{% for split, n in s.by_split|dictsort %}<tr><td>{{ split }}</td><td>{{ n }}</td></tr>{% endfor %}
<tr><th>this synset</th><th>{{ s.own }}</th></tr>
<tr><td>subtree</td><td>{{ s.images }} ({{ s.synsets_with_images }} synsets below)</td></tr></table>
{% if s.children %}<p>Below: {% for c in s.children %}<a href="/synset/{{ c.wnid }}">{{ c.lemma }}</a>
 <span class="count">({{ c.images }})</span>{% if not loop.last %}, {% endif %}{% endfor %}</p>{% endif %}
<h3>Images ({{ s.total_keys }})</h3>
<div class="grid" id="grid">{% for k in s["keys"] %}<a href="/image/{{ k }}" title="{{ k }}">
<img src="/thumb/{{ k }}" alt="{{ k }}" loading="lazy"></a>{% endfor %}</div>
<p class="pager">{% if s.page > 1 %}<a href="?page={{ s.page - 1 }}&per_page={{ s.per_page }}">« previous</a>
{% endif %}<span>page {{ s.page }} of {{ s.pages }}</span>{% if s.page < s.pages %}
<a href="?page={{ s.page + 1 }}&per_page={{ s.per_page }}">next »</a>{% endif %}</p>
<h3>Shards</h3><table><tr><th>file</th><th>format</th><th>split</th><th>samples</th><th>bytes</th></tr>
{% for e in s.shards %}<tr><td><a class="mono" href="/files/{{ e.path }}" download>{{ e.path }}</a></td>
<td>{{ e.format }}</td><td>{{ e.split }}</td><td>{{ e.samples }}</td><td>{{ e.bytes }}</td></tr>{% endfor %}
</table>
<h3>Duplicates dropped ({{ s.duplicates|length }})</h3>{% if s.duplicates %}<table>
<tr><th>source</th><th>kind</th><th>distance</th><th>kept</th></tr>{% for d in s.duplicates %}
<tr><td>{{ d.source }}</td><td>{{ d.kind }}</td><td>{{ d.distance }}</td>
<td><a href="/image/{{ d.kept_key }}">{{ d.kept_key }}</a></td></tr>{% endfor %}</table>{% endif %}
<h3>Rejected inputs ({{ s.rejects|length }})</h3>{% if s.rejects %}<table>
<tr><th>source</th><th>stage</th><th>reason</th></tr>{% for r in s.rejects %}
<tr><td>{{ r.source }}</td><td>{{ r.stage }}</td><td>{{ r.reason }}</td></tr>{% endfor %}</table>{% endif %}
<p><a href="/api/synset/{{ s.wnid }}?page={{ s.page }}&per_page={{ s.per_page }}">JSON</a></p>
{% endblock %}"""

IMAGE = """{% extends "base.html" %}{% block title %}{{ img.key }}{% endblock %}{% block body %}
{% set r = img.record %}{% set path = [{"wnid": img.synset.wnid, "lemma": img.synset.lemma}] %}
<div class="crumbs"><a href="/synset/{{ img.synset.wnid }}">{{ img.synset.lemma }}</a> › {{ img.key }}</div>
<h2 class="mono">{{ img.key }}</h2>
<div class="cols"><div class="figure" id="figure"><img src="/raw/{{ img.key }}" alt="{{ img.key }}"
 width="{{ r.width }}" height="{{ r.height }}">
<svg viewBox="0 0 {{ r.width }} {{ r.height }}" preserveAspectRatio="none">
{% for b in r.bboxes or [] %}<rect class="box" x="{{ b[0] }}" y="{{ b[1] }}" width="{{ b[2] - b[0] }}"
 height="{{ b[3] - b[1] }}" fill="none" stroke="#ff2d55" stroke-width="3"
 vector-effect="non-scaling-stroke"/>{% endfor %}</svg></div>
<table id="record">{% for name in ["synset", "label", "split", "source", "format", "width", "height",
 "orig_width", "orig_height", "orig_format", "sha256", "phash", "confidence", "bboxes", "license",
 "attribution", "ops"] %}<tr><th>{{ name }}</th><td class="mono">{{ r[name] if r[name] is not none
 else "—" }}</td></tr>{% endfor %}
<tr><th>shard</th><td class="mono"><a href="/files/{{ img.shard.path }}">{{ img.shard.path }}</a></td></tr>
</table></div>
<h3>Near and exact duplicates dropped in its favour ({{ img.duplicates|length }})</h3>
{% if img.duplicates %}<table><tr><th>dropped key</th><th>source</th><th>split</th><th>kind</th>
<th>distance</th></tr>{% for d in img.duplicates %}<tr><td class="mono">{{ d.key }}</td>
<td>{{ d.source }}</td><td>{{ d.split }}</td><td>{{ d.kind }}</td><td>{{ d.distance }}</td></tr>
{% endfor %}</table>{% endif %}
<p><a href="/raw/{{ img.key }}" download>download image</a> · <a href="/api/image/{{ img.key }}">JSON</a></p>
{% endblock %}"""

SEARCH = """{% extends "base.html" %}{% block title %}search{% endblock %}{% block body %}
<h2>Search: {{ result.query }}</h2>
{% if not result.synsets %}<p>No synset matches.</p>{% endif %}
<table>{% for c in result.synsets %}<tr><td><a href="/synset/{{ c.wnid }}">{{ c.lemma }}</a>
<span class="count mono">{{ c.wnid }}</span></td><td>{{ c.images }} images</td>
<td class="gloss">{{ c.gloss }}</td></tr>{% endfor %}</table>{% endblock %}"""

ERROR = """{% extends "base.html" %}{% block title %}{{ status }}{% endblock %}{% block body %}
<h2>{{ status }}</h2><p>{{ message }}</p><p><a href="/">back to the tree</a></p>{% endblock %}"""

TEMPLATES = {"base.html": BASE, "crumbs.html": CRUMBS, "tree.html": TREE, "node.html": NODE,
             "synset.html": SYNSET, "image.html": IMAGE, "search.html": SEARCH,
             "error.html": ERROR}
