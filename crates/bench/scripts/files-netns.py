#!/usr/bin/env python3
"""Files through udpchat vs TCP between two network namespaces with N% loss in the kernel (nftables).

Usage (root, nftables installed): files-netns.py UDPCHAT_BINARY RUNS LOSS_PERCENT
Prints each run and the medians; docs/BENCHMARKS.md section 12 quotes it."""
import subprocess, os, sys, json, time, tempfile, shutil
B = sys.argv[1]; runs = int(sys.argv[2]); loss = sys.argv[3]  # percent, e.g. "1"
size = 256 << 20
def sh(c, check=True): return subprocess.run(c, shell=True, check=check, capture_output=True, text=True)
for ns in ("ua","ub"): sh(f"ip netns del {ns}", check=False)
sh("ip netns add ua; ip netns add ub; ip link add va type veth peer name vb; ip link set va netns ua; ip link set vb netns ub")
sh("ip -n ua addr add 10.9.0.1/24 dev va; ip -n ub addr add 10.9.0.2/24 dev vb; ip -n ua link set va up; ip -n ub link set vb up; ip -n ua link set lo up; ip -n ub link set lo up")
for ns in ("ua","ub"):
    sh(f"ip netns exec {ns} nft add table inet loss")
    sh(f"ip netns exec {ns} nft 'add chain inet loss in {{ type filter hook input priority 0; }}'")
    sh(f"ip netns exec {ns} nft add rule inet loss in meta l4proto '{{ udp, tcp }}' numgen random mod 1000 '<' {int(float(loss)*10)} drop")
work = tempfile.mkdtemp(prefix="ns-")
src = os.path.join(work, "bulk.bin")
with open(src, "wb") as f:
    block = os.urandom(1 << 20)
    for i in range(size >> 20): f.write(i.to_bytes(8, "little") + block[8:])
env = dict(os.environ, UDPCHAT_SECRET="correct-horse-battery-staple-42", HOME=work)
tcp_recv = "import socket,time,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('10.9.0.2',16000));s.listen(1)\nc,_=s.accept();t=time.time();n=0\nf=open(sys.argv[1],'wb')\nwhile True:\n  b=c.recv(1<<20)\n  if not b: break\n  f.write(b);n+=len(b)\nf.close();print(n/(time.time()-t)/1048576)"
tcp_send = "import socket,os,sys\nc=socket.create_connection(('10.9.0.2',16000))\nf=open(sys.argv[1],'rb');os.sendfile(c.fileno(),f.fileno(),0,os.path.getsize(sys.argv[1]));c.close()"
res = {"udpchat": [], "tcp": []}
for r in range(runs):
    dl = os.path.join(work, "dl"); shutil.rmtree(dl, ignore_errors=True)
    rc = subprocess.Popen(["ip","netns","exec","ub",B,"--ephemeral","--port","12000","10.9.0.1:12000","--accept-files",dl,"--json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    time.sleep(0.3)
    sd = subprocess.Popen(["ip","netns","exec","ua",B,"--ephemeral","--port","12000","10.9.0.2:12000","--send",src,"--json"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    secs=None
    for line in rc.stdout:
        e=json.loads(line)
        if e["event"]=="file_done": secs=e["seconds"]; break
        if e["event"]=="file_failed": break
    sd.wait(timeout=300); rc.stdin.close(); rc.wait(timeout=30)
    res["udpchat"].append((size/1048576)/secs if secs else 0)
    out = os.path.join(work,"tcp.out")
    tr = subprocess.Popen(["ip","netns","exec","ub","python3","-c",tcp_recv,out], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    subprocess.run(["ip","netns","exec","ua","python3","-c",tcp_send,src], check=True)
    res["tcp"].append(float(tr.communicate(timeout=300)[0]))
    print(r, {k: f"{v[-1]:.0f}" for k,v in res.items()}, flush=True)
for k,v in res.items():
    s=sorted(v); print(k, "median", f"{s[len(s)//2]:.0f} MiB/s", "all", [f"{x:.0f}" for x in v])
u=sorted(res["udpchat"])[runs//2]; t=sorted(res["tcp"])[runs//2]; print(f"udpchat/tcp = {u/t:.2f}")
for ns in ("ua","ub"): sh(f"ip netns del {ns}", check=False)
shutil.rmtree(work, ignore_errors=True)
