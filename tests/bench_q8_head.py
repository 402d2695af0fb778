#!/usr/bin/env python3
# bench_q8_head.py: the error of the 8-bit LM head alone (`rotor convert --head q8`), measured on
# the tiny-bitnet fixture: the fixture's last hidden state of len7 (hidden_layer1_len7) through
# the final RMSNorm, then the head as rotor stores it in f16 and in Q8R (per-row absmax/127,
# half to even), compared logit by logit. Not part of `make test` (about 30 s of pure Python).
# usage: python3 tests/bench_q8_head.py [FIXTURE_DIR]
import json, struct, math, sys
F=sys.argv[1] if len(sys.argv) > 1 else '../shared/fixtures/tiny-bitnet'
cfg=json.load(open(F+'/config.json'))
f=open(F+'/model.safetensors','rb'); n=struct.unpack('<Q',f.read(8))[0]; hdr=json.loads(f.read(n)); base=8+n
def tensor(name):
    m=hdr[name]; a,b=m['data_offsets']; f.seek(base+a); raw=f.read(b-a); dt=m['dtype']
    if dt=='F32': return list(struct.unpack('<%df'%(len(raw)//4),raw)), m['shape']
    if dt=='BF16': return [struct.unpack('<f',b'\0\0'+raw[i:i+2])[0] for i in range(0,len(raw),2)], m['shape']
    if dt=='F16': return list(struct.unpack('<%de'%(len(raw)//2),raw)), m['shape']
    raise SystemExit(dt)
E,sh=tensor('model.embed_tokens.weight'); V,D=sh
nw,_=tensor('model.norm.weight')
raw=open(F+'/hidden_layer1_len7.f32.bin','rb').read(); H=struct.unpack('<%df'%(len(raw)//4),raw)
h=H[-D:]  # last position
eps=cfg.get('rms_norm_eps',1e-5)
ss=sum(x*x for x in h)/D; inv=1/math.sqrt(ss+eps); hn=[h[i]*inv*nw[i] for i in range(D)]
# f16 head as rotor stores it (the converter keeps the table as f16)
def f16(x): return struct.unpack('<e',struct.pack('<e',x))[0]
lf=[];lq=[]
for r in range(V):
    row=E[r*D:(r+1)*D]
    rf=[f16(x) for x in row]
    lf.append(sum(a*b for a,b in zip(rf,hn)))
    m=max(abs(x) for x in row); s=(m if m>1e-30 else 1e-30)/127
    q=[max(-127,min(127,round(x/s))) for x in row]
    lq.append(s*sum(a*b for a,b in zip(q,hn)))
ref=struct.unpack('<%df'%V, open(F+'/logits_last_len7.ref-f64.f32.bin','rb').read())
d=[abs(a-b) for a,b in zip(lf,ref)]
print('f16 head from hidden_layer1 vs reference logits: max %.3g'%max(d))
d=[a-b for a,b in zip(lq,lf)]
mean=sum(lf)/V; sd=math.sqrt(sum((x-mean)**2 for x in lf)/V)
top=lambda v: sorted(range(V), key=lambda i:-v[i])[:5]
print('q8 head vs f16 head on the same hidden state: max %.4f rms %.4f, logit sd %.2f, top1 same %s, top5 overlap %d'%(max(abs(x) for x in d), math.sqrt(sum(x*x for x in d)/V), sd, top(lq)[0]==top(lf)[0], len(set(top(lq))&set(top(lf)))))
