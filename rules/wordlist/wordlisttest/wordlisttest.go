// Package wordlisttest makes realistic word lists and chat messages for
// tests and benchmarks of word filters: Chinese phrases, Latin spam words,
// mixed ones and links, deterministically from a seed.
package wordlisttest

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// hanzi are common simplified characters; chat and sensitive words draw on
// the same ones, as they do in real life.
const hanzi = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严龙飞免费赌博彩票代理微信加群赚钱兼职刷单贷款发票办证枪支毒品色情裸聊约炮外挂私服"

var latin = []string{
	"free", "crypto", "casino", "bonus", "win", "cash", "loan", "pills", "bet", "vip", "porn", "drug",
	"gamble", "click", "link", "offer", "deal", "sale", "airdrop", "token", "wallet", "invest", "profit",
	"telegram", "whatsapp", "escort", "viagra", "forex", "binary", "signal", "pump", "giveaway",
}

// Words returns n distinct words: 2 to 6 character Chinese phrases (60%),
// Latin spam words with a number (25%), mixed ones such as vip会员8 (10%)
// and links (5%).
func Words(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	han := []rune(hanzi)
	seen := make(map[string]bool, n)
	out := make([]string, 0, n)
	for len(out) < n {
		var w string
		switch k := r.IntN(100); {
		case k < 60:
			w = phrase(r, han, 2+r.IntN(5))
		case k < 85:
			w = fmt.Sprintf("%s%d", latin[r.IntN(len(latin))], r.IntN(10000))
		case k < 95:
			w = fmt.Sprintf("%s%s%d", latin[r.IntN(len(latin))], phrase(r, han, 2), r.IntN(100))
		default:
			w = fmt.Sprintf("t.me/%s%d", latin[r.IntN(len(latin))], r.IntN(100000))
		}
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

func phrase(r *rand.Rand, han []rune, k int) string {
	var b strings.Builder
	for range k {
		b.WriteRune(han[r.IntN(len(han))])
	}
	return b.String()
}

// Message returns a chat message of n characters: Chinese text with Latin
// words, numbers, punctuation and an emoji now and then.
func Message(n int, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 0x3e55))
	han := []rune(hanzi)
	chat := []string{"hello", "ok", "good", "morning", "see", "you", "thanks", "lol", "meeting", "photo"}
	var b []rune
	for len(b) < n {
		switch k := r.IntN(100); {
		case k < 80:
			b = append(b, han[r.IntN(len(han))])
		case k < 88:
			b = append(b, []rune(" "+chat[r.IntN(len(chat))]+" ")...)
		case k < 95:
			b = append(b, []rune("，。！？、 ")[r.IntN(6)])
		case k < 98:
			b = append(b, []rune(fmt.Sprint(r.IntN(1000)))...)
		default:
			b = append(b, []rune("🙂👍🔥😂")[r.IntN(4)])
		}
	}
	return string(b[:n])
}
